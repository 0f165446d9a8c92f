"""bench/results.md: every budget of issue 13 in one table, the small-mail configurations beside the default."""

from __future__ import annotations

from bench.harness import Plan, Results, Samples
from bench.report import markdown, rows


def _samples(floor: float, handler: float) -> Samples:
    samples = Samples()
    samples.add("floor", floor)
    samples.add("handler", handler)
    return samples


def _results(plan: Plan, idempotent_ms: float) -> Results:
    results = Results(plan, small=_samples(2.0, 2.8), small_cpu=_samples(1.8, 2.5))
    results.configured["idempotency"] = (_samples(2.0, idempotent_ms), _samples(1.8, 3.5))
    results.configured["deployed"] = (_samples(2.0, 4.4), _samples(1.8, 4.0))
    return results


def test_the_default_run_shows_the_idempotency_budget_and_the_whole_template_without_one() -> None:
    # GIVEN a default run that also measured the small mail with idempotency on and as deployed
    found = {row.measure: row for row in rows(_results(Plan(configurations=("idempotency", "deployed")), 3.9))}
    # THEN the default small mail has its 1.5x budget, idempotency on its 2x, the whole template none
    assert found["small mail (5 KB): time per message"].budget == 1.5
    idempotent = found["small mail (5 KB), idempotency on: time per message"]
    assert (idempotent.budget, idempotent.verdict) == (2.0, "PASS")
    deployed = found["small mail (5 KB), as deployed (idempotency, team replies, delivery trace): time per message"]
    assert deployed.budget is None and deployed.verdict == "" and deployed.ratio == 2.2
    assert found["small mail (5 KB), idempotency on: CPU per message"].budget is None


def test_an_idempotency_run_over_its_budget_fails_in_results_md() -> None:
    # GIVEN the idempotency configuration at 2.1x the floor
    results = _results(Plan(configurations=("idempotency", "deployed")), 4.2)
    # WHEN the results file is written
    text = markdown(results, 512, "template.yaml")
    # THEN its verdict and the summary say so, and the whole template's row is explained
    assert "| small mail (5 KB), idempotency on: time per message | ms | 2.0 | 4.2 | 2.10x | ≤ 2x | FAIL |" in text
    assert "Budgets: FAILED: small mail (5 KB), idempotency on: time per message." in text
    assert "The whole template's small mail has no budget of its own." in text


def test_a_deployed_run_has_no_small_mail_budget_and_an_idempotency_run_has_2x() -> None:
    deployed = {row.measure: row for row in rows(Results(Plan(deployed=True), small=_samples(2.0, 4.4)))}
    idempotent = {row.measure: row for row in rows(Results(Plan(idempotency=True), small=_samples(2.0, 4.4)))}
    assert deployed["small mail (5 KB): time per message"].budget is None
    assert idempotent["small mail (5 KB): time per message"].verdict == "FAIL"
