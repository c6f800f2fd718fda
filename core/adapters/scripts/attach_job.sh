#!/bin/sh
# AttachJob (jobs.py): srun runs detached from the SSH session; if it ends within a few seconds
# its status and error text are the answer (bad job, step refused), otherwise it keeps running
# inside the job.
# $1 job id  $2 the caller's command line (run by /bin/sh inside the job, as given)
log=$(mktemp) || exit 70
setsid srun --overlap --jobid="$1" -- /bin/sh -c "$2" </dev/null >/dev/null 2>"$log" &
pid=$!
i=0
while kill -0 "$pid" 2>/dev/null && [ "$i" -lt 20 ]; do sleep 0.25; i=$((i+1)); done
if kill -0 "$pid" 2>/dev/null; then rm -f "$log"; exit 0; fi
wait "$pid"; rc=$?
cat "$log" >&2; rm -f "$log"
exit "$rc"
