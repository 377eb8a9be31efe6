#!/usr/bin/env bash
# The one test command on a fresh machine with the .NET SDK: installs what the tests need
# (tests/install-tools.sh; root for apt-get), then runs every test. Arguments go to `dotnet test`.
set -uo pipefail
cd "$(dirname "$0")"
bash tests/install-tools.sh
exec dotnet test Tunnel.sln "$@"
