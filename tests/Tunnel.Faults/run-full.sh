#!/usr/bin/env bash
# The whole fault suite in one command: the fast subset (what CI runs), the full scenarios and the
# 10-minute soak, with each scenario's figures collected for docs/reliability.md.
#   tests/Tunnel.Faults/run-full.sh            # everything (about 20 minutes)
#   TUNNEL_FAULTS=full tests/Tunnel.Faults/run-full.sh   # without the soak
# Needs root (network namespaces), iproute2, nftables, h2load and curl.
set -euo pipefail
cd "$(dirname "$0")/../.."

export TUNNEL_FAULTS="${TUNNEL_FAULTS:-full,soak}"
results="${TUNNEL_FAULTS_RESULTS:-$(mktemp -d)}"
mkdir -p "$results"
export TUNNEL_FAULTS_FIGURES="$results/figures.md"
: > "$TUNNEL_FAULTS_FIGURES"

dotnet build tests/Tunnel.Faults -c Debug -warnaserror 2>&1 | tail -n 3
dotnet build tests/Tunnel.Protocol.Tests -c Debug -warnaserror 2>&1 | tail -n 1
dotnet build tests/Tunnel.Edge.Dial.Tests -c Debug -warnaserror 2>&1 | tail -n 1

status=0
# The property tests live beside the code they test.
dotnet test tests/Tunnel.Protocol.Tests --no-build --filter "FullyQualifiedName~Properties" || status=1
dotnet test tests/Tunnel.Edge.Dial.Tests --no-build --filter "FullyQualifiedName~Properties" || status=1
dotnet test tests/Tunnel.Faults --no-build --logger "console;verbosity=normal" --logger "trx;LogFileName=faults.trx" --results-directory "$results" || status=1

echo
echo "figures: $TUNNEL_FAULTS_FIGURES"
cat "$TUNNEL_FAULTS_FIGURES"
exit $status
