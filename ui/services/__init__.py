"""The explorer's services, one module per job (ARCHITECTURE.md, "The explorer"): `models` (the model registry),
`sessions` (finding and checking sessions, CRUD), `runs` (live searches), `ratings` (human ratings and edits of a
tree), `autolabel` (automatic-label jobs), `views` (pure functions from a tree to rows), `transfer` (import and
export). `ui.service.Explorer` is the thin facade the pages and the API call."""
