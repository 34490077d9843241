#!/bin/sh
# Refuses to start FreeSWITCH without its secrets: an unset password would leave the event socket with the
# literal "$${esl_password}" (or, in a stock config, the well-known default). *_FILE variants read a mounted
# Kubernetes Secret.
set -eu
for var in STOREAGENT_ESL_PASSWORD STOREAGENT_GATEWAY_PASSWORD; do
  file_var="${var}_FILE"
  eval "file=\${$file_var:-}"
  if [ -n "$file" ]; then
    [ -r "$file" ] || { echo "$file_var: cannot read $file" >&2; exit 1; }
    eval "export $var=\"\$(cat \"\$file\")\""
  fi
done
: "${STOREAGENT_ESL_PASSWORD:?STOREAGENT_ESL_PASSWORD (or _FILE) must be set: the inbound ESL password}"
case "$STOREAGENT_ESL_PASSWORD" in
  ClueCon|"") echo "STOREAGENT_ESL_PASSWORD: the FreeSWITCH default password is refused" >&2; exit 1 ;;
esac
[ ${#STOREAGENT_ESL_PASSWORD} -ge 16 ] || { echo "STOREAGENT_ESL_PASSWORD: use at least 16 characters" >&2; exit 1; }
: "${STOREAGENT_ESL_ALLOW_CIDR:?STOREAGENT_ESL_ALLOW_CIDR must be set: who may use inbound ESL (the operator)}"
: "${STOREAGENT_TRUNK_IP:?STOREAGENT_TRUNK_IP must be set: the carrier's SIP signalling address}"
export STOREAGENT_SIP_IP="${STOREAGENT_SIP_IP:-$(hostname -i | awk '{print $1}')}"
export STOREAGENT_EXTERNAL_IP="${STOREAGENT_EXTERNAL_IP:-$STOREAGENT_SIP_IP}"
# The operator and the agents bridge to `sofia/gateway/$STOREAGENT_GATEWAY_NAME/...`: the chart sets all three.
export STOREAGENT_GATEWAY_NAME="${STOREAGENT_GATEWAY_NAME:-carrier}"
case "$STOREAGENT_GATEWAY_NAME" in
  *[!a-z0-9-]*|-*) echo "STOREAGENT_GATEWAY_NAME: use lower-case letters, digits and '-'" >&2; exit 1 ;;
esac
export STOREAGENT_GATEWAY_PROXY="${STOREAGENT_GATEWAY_PROXY:-$STOREAGENT_TRUNK_IP}"
export STOREAGENT_GATEWAY_USERNAME="${STOREAGENT_GATEWAY_USERNAME:-storeagent}"
export STOREAGENT_GATEWAY_PASSWORD="${STOREAGENT_GATEWAY_PASSWORD:-unused}"
exec "$@"
