"""Two servers, one database (issue 26, "What a team needs"): what one server's API writes (a rating, an edit, a
human step, sampled children, a prune) the other server's API reads on its next read, though each keeps its own
copy of the trees it served (the per-session change stamp, `Store.tree_stamp`); and neither server's write drops
what the other wrote. Each server has its own Store (its own connection pool), as two `serve` processes would."""
from __future__ import annotations

import contextlib

import pytest
from gradio_client import Client

from reasoning.tree import ReasoningTree
from reasoning.types import Problem, Step
from storage import Store
from ui.testing import serve

pytestmark = pytest.mark.model


def nodes(client: Client, sid: int) -> dict[str, dict]:
    return {n["id"]: n for n in client.predict(sid, api_name="/tree")["nodes"]}


def human(client: Client, sid: int, node: str) -> str:
    return client.predict(sid, node, api_name="/trace")[-1]["human"]


def test_what_one_server_writes_the_other_reads_next(db_url, demo_models):
    seed = Store(db_url)
    t = ReasoningTree(Problem("p1", "Use 2 3 4 6 to make 24.", "24"))
    t.add_child("0", Step("6 - 2 = 4", factor="compute"))
    sid = seed.create_session(t, name="shared")
    seed.close()
    with contextlib.ExitStack() as stack:
        stores = [stack.enter_context(Store(db_url)) for _ in range(2)]
        urls = [stack.enter_context(serve(generator=demo_models[0], scorer=demo_models[1], store=s)) for s in stores]
        a, b = (Client(u, verbose=False) for u in urls)
        assert set(nodes(b, sid)) == {"0", "0.0"} and not human(b, sid, "0.0")  # b keeps its copy of the tree

        a.predict(sid, "0.0", 1, False, "", "ann-a", api_name="/rate")
        assert human(b, sid, "0.0") == "ann-a +1"

        typed = a.predict(sid, "0.0", "4 * 6 = 24", "", "ann-a", api_name="/human_step")
        edited = a.predict(sid, "0.0", "6 / 2 = 3", "ann-a", api_name="/edit_step")
        grown = a.predict(sid, "0", "compute", 2, "ann-a", api_name="/expand")
        seen = nodes(b, sid)
        assert seen[typed]["origin"] == "human" and seen[typed]["text"] == "4 * 6 = 24"
        assert seen[edited]["origin"] == "edited" and seen[edited]["text"] == "6 / 2 = 3"
        assert set(grown) <= set(seen)

        a.predict(sid, edited, "ann-a", api_name="/prune")
        assert nodes(b, sid)[edited]["pruned"] is True

        # the other way, after b's copy was refreshed: b's writes keep a's nodes, and a sees them next
        b_typed = b.predict(sid, typed, "24", "", "ann-b", api_name="/human_step")
        b.predict(sid, typed, -1, False, "", "ann-b", api_name="/rate")
        seen_a = nodes(a, sid)
        assert b_typed in seen_a and {typed, edited, *grown} <= set(seen_a)
        assert human(a, sid, typed) == "ann-b -1"

        stored = {n["id"] for n in stores[0].load_tree(sid).to_dict()["nodes"]}
        assert stored == set(seen_a) == set(nodes(b, sid))  # nothing either server wrote was lost
        assert {(x.annotator, x.node_id, x.rating) for x in stores[1].annotations(sid)} == {
            ("ann-a", "0.0", 1), ("ann-b", typed, -1)}
