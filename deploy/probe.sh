#!/bin/bash
# closeout-probe PATH [PORT]: exit 0 when GET http://127.0.0.1:PORT/PATH answers 200.
#
# The runtime image carries no HTTP client, and bash's /dev/tcp is enough for a local
# probe. PORT defaults to the port of CLOSEOUT_API__LISTEN (the image sets it), else 8080.
set -euo pipefail

path=${1:?usage: closeout-probe PATH [PORT]}
listen=${CLOSEOUT_API__LISTEN:-127.0.0.1:8080}
port=${2:-${listen##*:}}

exec 3<>"/dev/tcp/127.0.0.1/${port}"
printf 'GET %s HTTP/1.1\r\nHost: 127.0.0.1:%s\r\nConnection: close\r\n\r\n' "$path" "$port" >&3
IFS=' ' read -r -t 5 _version status _ <&3
[[ $status == 200 ]]
