#!/bin/sh
# A warm standby service for `singleton-lock run --warm` (docs/command.md,
# "Warm standby"): it boots while standby, then waits for the one line
# "leader TOKEN" on the descriptor SINGLETON_LOCK_LEADER_FD names; EOF without
# that line means this instance will not lead.
#
#   singleton-lock run --name demo --warm -- examples/warm/warm_service.sh [BOOT_SECONDS]
#
# Its "leader work" is a line every second; replace boot and serve with yours.
set -eu
: "${SINGLETON_LOCK_LEADER_FD:?run me under singleton-lock run --warm}"
echo "warm_service: booting (${1:-1} s) while standby" >&2
sleep "${1:-1}"
echo "warm_service: booted; waiting to lead" >&2
if ! read -r word token <&"$SINGLETON_LOCK_LEADER_FD"; then
    echo "warm_service: not leading (end of file); exiting" >&2
    exit 0
fi
[ "$word" = leader ] || { echo "warm_service: unexpected line '$word $token'" >&2; exit 1; }
echo "warm_service: leader with fencing token $token" >&2
trap 'echo "warm_service: stopping" >&2; exit 0' TERM INT
while :; do
    echo "warm_service: working as the leader (token $token)"
    sleep 1 &
    wait $!
done
