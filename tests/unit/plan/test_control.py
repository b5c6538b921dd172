"""plan.control: which upstream failures a node tolerates and which actions fire when."""

from __future__ import annotations

from valohai_airflow.plan import control
from valohai_airflow.plan.model import PipelinePlan

from .support import compile_text

YAML = """
- step:
    name: s
    image: busybox
    command: echo hi
    parameters:
      - name: lr
        type: float
        default: 0.1
    inputs:
      - name: x
        optional: true
- pipeline:
    name: p
    nodes:
      - name: a
        type: execution
        step: s
        on-error: continue
        actions:
          - when: node-complete
            if: [metadata.loss < 0.5, parameter.lr >= 0.1]
            then: [stop-pipeline, noop]
          - when: [node-starting]
            then: require-approval
      - name: b
        type: execution
        step: s
        on-error: stop-next
      - name: c
        type: execution
        step: s
        on-error: retry
    edges:
      - [a.parameter.lr, c.parameter.lr]
      - [b.output.*, c.input.x]
"""


def pipeline() -> PipelinePlan:
    (p,) = compile_text(YAML).pipelines
    return p


def test_continue_upstreams_are_tolerated_and_the_others_block() -> None:
    p = pipeline()
    c = p.node("c")
    assert p.upstreams(c.name) == ("a", "b")
    assert control.continue_upstreams(p, c) == ("a",)
    assert control.blocking_upstreams(p, c) == ("b",)
    assert control.stops_everything(c) and not control.stops_everything(p.node("b"))


def test_all_conditions_must_hold_and_every_then_fires_in_order() -> None:
    a = pipeline().node("a")
    fired = control.decide(a, control.NODE_COMPLETE, {"loss": 0.3}, {"lr": 0.1})
    assert [d.then for d in fired] == ["stop-pipeline", "noop"]
    assert "metadata.loss < 0.5 and parameter.lr >= 0.1" in fired[0].reason
    assert control.decide(a, control.NODE_COMPLETE, {"loss": 0.7}, {"lr": 0.1}) == []
    assert control.decide(a, control.NODE_COMPLETE, {}, {"lr": 0.1}) == []  # no metadata: never fires
    assert control.decide(a, control.NODE_ERROR, {"loss": 0.3}, {"lr": 0.1}) == []


def test_every_evaluation_says_what_it_saw_and_decided() -> None:
    a = pipeline().node("a")
    (fired,) = control.evaluate(a, control.NODE_COMPLETE, {"loss": 0.3}, {"lr": 0.1})
    assert fired.holds and not fired.missing
    assert fired.line(a, control.NODE_COMPLETE) == (
        "node 'a': action on node-complete: metadata.loss is 0.3, so `metadata.loss < 0.5` holds; "
        "parameter.lr is 0.1, so `parameter.lr >= 0.1` holds: then stop-pipeline, noop"
    )
    (missing,) = control.evaluate(a, control.NODE_COMPLETE, {"acc": 1}, {"lr": 0.1})
    assert missing.missing and not missing.holds
    assert "metadata.loss is missing (the step never printed it), so `metadata.loss < 0.5` does not hold" in (
        missing.line(a, control.NODE_COMPLETE)
    )
    assert missing.line(a, control.NODE_COMPLETE).endswith(": stop-pipeline, noop not taken")
    (text,) = control.evaluate(a, control.NODE_COMPLETE, {"loss": "high"}, {"lr": 0.1})
    assert "metadata.loss is 'high', which cannot be compared with 0.5" in text.line(a, control.NODE_COMPLETE)
    assert control.evaluate(a, control.NODE_ERROR, {}, {}) == []  # no action on node-error: nothing to say


def test_approval_only_gates_node_starting() -> None:
    p = pipeline()
    assert len(control.approval_actions(p.node("a"))) == 1
    assert control.approval_actions(p.node("b")) == ()
