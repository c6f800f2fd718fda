# shellcheck shell=bash
# A transfer job's body (after transfer_prelude.sh): the streamer's server (streamer_job.py) sends
# or receives one file; the secret reaches it in the environment only.
# Header variables: MODE (receive/send), TARGET, SOURCE, SECRET, STREAMER (the server's argv, an array).
trap 'exit 143' TERM INT HUP
progress 0
if [ "$MODE" = receive ] && { [ -e "$TARGET" ] || [ -L "$TARGET" ]; }; then
  fail FAILED "'$TARGET' already exists: the streamer does not overwrite a file"
fi
if [ "$MODE" = send ] && [ ! -f "$SOURCE" ]; then
  fail SOURCE_MISSING "cannot access '$SOURCE': No such file or directory"
fi
export F7T_STREAMER_SECRET="$SECRET"
unset SECRET
run "${STREAMER[@]}"
unset F7T_STREAMER_SECRET
if [ "$MODE" = receive ] && [ ! -e "$TARGET" ]; then
  fail FAILED "no client sent the file before the streamer stopped waiting"
fi
report OK ""
echo "$F7T_SUCCESS"
