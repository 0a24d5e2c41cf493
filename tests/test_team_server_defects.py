"""The defects a probe of a labelling team's server found (issue 26): each test fails without its fix.

Login throttling that a multipart body cannot bypass, that no stranger can turn against a user and that survives a
restart; a refused `/search` stores nothing; reading commands never create a database; a chunk of 0 is refused; one
problem limit everywhere; bounded imports; and the rough edges (one-line refusals, no tracebacks, paths named).
"""
from __future__ import annotations

import pytest

from reasoning.backends import load_generator, load_scorer
from reasoning.limits import MAX_PROBLEM_CHARS
from storage import Store
from ui.service import Explorer
from ui.validate import UserError

pytestmark = pytest.mark.model  # tiny models built from configs
PROBLEM = "Natalia sold clips to 48 of her friends in April, and then half as many in May. How many in all?"


@pytest.fixture(scope="module")
def models(tiny):
    return load_generator(tiny.gpt2_tags, max_step_tokens=6), load_scorer(tiny.token_classification)


@pytest.fixture
def engine(models, db_url):
    store = Store(db_url)
    yield Explorer(generator=models[0], scorer=models[1], store=store)
    store.close()


# -- defect 3: a refused search stores nothing ---------------------------------------------------------------
@pytest.mark.parametrize("settings,needle", [
    ({"factors": ["nope"]}, "unknown thought factor 'nope'"),
    ({"answer_selection": "orm"}, "outcome reward model"),
])
def test_a_search_refused_for_its_settings_stores_no_session(engine, settings, needle):
    config = engine.config({"algorithm": "mcts", "budget": 4, **settings})
    with pytest.raises(UserError, match=needle):
        list(engine.run_search(PROBLEM, config))
    assert engine.store.list_sessions(include_deleted=True) == []


# -- defect 6: one problem limit for the API, the command line and imports ---------------------------------------
def test_the_api_takes_a_problem_as_long_as_an_import_may_be(engine):
    text = "What is 2 + 3? " + "x" * (MAX_PROBLEM_CHARS - 100)
    assert engine.problem(text).text == text.strip()
    with pytest.raises(UserError, match=f"at most {MAX_PROBLEM_CHARS}"):
        engine.problem("y" * (MAX_PROBLEM_CHARS + 1))
