#!/bin/sh
# A stand-in for an LLM agent's CLI, so that the demo runs anywhere: it reads
# its prompt on stdin like `claude --print` would, then does the stage's job
# and writes the artifact the prompt asks for.
prompt=$(cat)
# The demo's files sit beside the pipeline, wherever orch is run from.
demo=$(dirname "$ORCH_PIPELINE")/demo
printf 'agent: got a %s-byte prompt for stage %s (attempt %s)\n' "${#prompt}" "$ORCH_STAGE" "$ORCH_ATTEMPT"
case "$ORCH_STAGE" in
testing)
    if sh "$demo/project/run-tests.sh"; then
        result=PASS
    else
        result=FAIL
    fi
    printf 'result: %s\nstatus: the agent ran the suite (the test runner was off)\n' "$result" >"$ORCH_TASK_DIR/13-test-report.md"
    ;;
review)
    printf 'verdict: APPROVED\nsummary: small, tested, formatted\n' >"$ORCH_TASK_DIR/09-review.md"
    ;;
*)
    echo "agent: nothing to do in stage $ORCH_STAGE" >&2
    exit 2
    ;;
esac
