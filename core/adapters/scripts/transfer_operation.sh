# shellcheck shell=bash
# A transfer job's body (after transfer_prelude.sh): one file tool run as a job (cp, mv, rm,
# compress, extract: the operations too long for the synchronous endpoints).
# Header variables: MUST_EXIST (a path that must exist first, or ""), TOOL (the tool's argv, an array).
trap 'exit 143' TERM INT HUP
progress 0
if [ -n "$MUST_EXIST" ] && [ ! -e "$MUST_EXIST" ] && [ ! -L "$MUST_EXIST" ]; then
  fail SOURCE_MISSING "cannot access '$MUST_EXIST': No such file or directory"
fi
run "${TOOL[@]}"
report OK ""
echo "$F7T_SUCCESS"
