#!/usr/bin/env bash
# Prints every replica's visits: its name, its visit count and its last few visits, so you can
# see that each replica keeps its own. Wasm pods have no shell (no `kubectl exec cat`), so this
# asks each pod's HTTP API through the API server's pod proxy (`kubectl get --raw`).
#
# Usage: k8s/show.sh [-n NAMESPACE] [-l SELECTOR] [-t LAST]
#   -n  namespace (default: the current context's, else "default")
#   -l  label selector (default: app.kubernetes.io/name=app-wasm)
#   -t  how many of the latest visits to print per replica (default: 5)
set -euo pipefail

namespace=""
selector="app.kubernetes.io/name=app-wasm"
last=5
while getopts "n:l:t:h" opt; do
  case "$opt" in
    n) namespace=$OPTARG ;;
    l) selector=$OPTARG ;;
    t) last=$OPTARG ;;
    *) sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
  esac
done
: "${KUBECTL:=kubectl}"
if [ -z "$namespace" ]; then
  namespace=$($KUBECTL config view --minify -o 'jsonpath={..namespace}' 2>/dev/null || true)
  namespace=${namespace:-default}
fi

# One "name ready-status" line a pod, in name order (app-wasm-0, -1, -2).
pods=$($KUBECTL get pods -n "$namespace" -l "$selector" --sort-by=.metadata.name \
  -o 'jsonpath={range .items[*]}{.metadata.name}{" "}{.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}')
if [ -z "$pods" ]; then
  echo "no pods match -l $selector in namespace $namespace (kubectl apply -k k8s/ first?)" >&2
  exit 1
fi

# The pod's HTTP port: the one named "http" (8080 in k8s/statefulset.yaml).
port_of() {
  $KUBECTL get pod -n "$namespace" "$1" \
    -o 'jsonpath={.spec.containers[0].ports[?(@.name=="http")].containerPort}'
}

ready=0
while read -r pod status; do
  if [ "$status" != "True" ]; then
    printf '%s: not ready, skipped\n\n' "$pod"
    continue
  fi
  proxy="/api/v1/namespaces/$namespace/pods/$pod:$(port_of "$pod")/proxy"
  summary=$($KUBECTL get --raw "$proxy/visits")
  count=$(printf '%s' "$summary" | sed -n 's/.*"visits":\([0-9]*\).*/\1/p')
  printf '%s: %s visits\n' "$pod" "${count:-?}"
  # ?format=text: the API server's proxy cannot pass an Accept header; ?tail= keeps the
  # transfer to the records printed, however long the log.
  $KUBECTL get --raw "$proxy/visits?format=text&tail=$last" | sed 's/^/  /'
  echo
  ready=$((ready + 1))
done <<< "$pods"

if [ "$ready" -eq 0 ]; then
  echo "no pod matching -l $selector in namespace $namespace is ready yet (kubectl get pods -w)" >&2
  exit 1
fi
