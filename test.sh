#!/usr/bin/env bash
# The one test command on a fresh machine with the .NET SDK: installs what the tests need
# (tests/install-tools.sh; root for apt-get), then runs every test. Arguments go to `dotnet test`.
#
# Two passes: every project but the fault suite, in parallel as `dotnet test` runs them; then the fault
# suite's fast and full scenarios alone (TUNNEL_FAULTS=full: edge restarts, rebalancing, lossy and slow
# links, hostile peers), so their timings do not share the cores with the end-to-end project. The
# 10-minute soak stays out (tests/Tunnel.Faults/run-full.sh runs it).
set -uo pipefail
cd "$(dirname "$0")"
bash tests/install-tools.sh
status=0
dotnet test Tunnel.sln --filter "FullyQualifiedName!~Tunnel.Faults" "$@" || status=1
TUNNEL_FAULTS="${TUNNEL_FAULTS:-full}" dotnet test tests/Tunnel.Faults "$@" || status=1
exit $status
