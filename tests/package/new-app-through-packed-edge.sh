#!/usr/bin/env bash
# What a newcomer does, from packages only: pack the plugin and the edge tool to a local feed, install the
# edge as a .NET tool, start it with a fresh directory, issue a credential, create an app from the SDK's
# `web` template, add the package and the one line, run it, and curl it through the edge.
# Restores use only the local feed and the NuGet packages already on this machine (offline).
# usage: new-app-through-packed-edge.sh WORK_DIR TUNNEL_PORT HTTP_PORT
set -euo pipefail
repo="$(cd "$(dirname "$0")/../.." && pwd)"
work="$1"; tunnel_port="$2"; http_port="$3"
mkdir -p "$work"
cd "$work"
# A version of this run's own, so no package of an earlier run, cached on this machine, can stand in.
version="$(sed -n 's:.*<Version>\(.*\)</Version>.*:\1:p' "$repo/Directory.Build.props" | head -n 1)-local.$(date +%s)"
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 DOTNET_SKIP_FIRST_TIME_EXPERIENCE=1

echo "== pack $version"
for project in Tunnel.Protocol Tunnel.Edge.Dial Tunnel.Transport Tunnel.Telemetry.Prometheus Tunnel.Edge; do
  dotnet pack "$repo/src/$project" -c Release -o "$work/feed" -p:Version="$version" --nologo -v q >/dev/null
done
ls "$work/feed"

# Offline: the local feed, and the packages this machine already holds (read as a feed; this run
# extracts into a folder of its own, so it leaves the machine's cache as it was).
packages="${NUGET_PACKAGES:-$HOME/.nuget/packages}"
export NUGET_PACKAGES="$work/packages"
cat > nuget.config <<XML
<?xml version="1.0" encoding="utf-8"?>
<configuration>
  <packageSources>
    <clear />
    <add key="local" value="$work/feed" />
    <add key="machine" value="$packages" />
  </packageSources>
</configuration>
XML

echo "== the edge, from the tool package"
dotnet tool install Tunnel.Edge --version "$version" --tool-path "$work/tools" --configfile nuget.config >/dev/null
"$work/tools/tunnel-edge" init --dir "$work/edge" --dns localhost --ip 127.0.0.1 >/dev/null
"$work/tools/tunnel-edge" issue --dir "$work/edge" --domain app.test --edge "127.0.0.1:$tunnel_port" --edge-server-name localhost --out "$work/app.credential.json" >/dev/null
"$work/tools/tunnel-edge" serve --dir "$work/edge" --listen 127.0.0.1 --tunnel-port "$tunnel_port" --http-port "$http_port" --https-port -1 --admin-port -1 > "$work/edge.log" 2>&1 &
edge=$!

echo "== a new app from the web template, the package and the one line"
dotnet new web -o "$work/app" --no-update-check >/dev/null
dotnet add "$work/app" package Tunnel.Transport --version "$version" >/dev/null
# The one line, after the builder is created (the template's lines end in CRLF).
sed -i 's/^\(var builder = WebApplication.CreateBuilder(args);\)\(\r\?\)$/\1\2\nbuilder.WebHost.UseTunnelTransport();\2/' "$work/app/Program.cs"
grep -q 'UseTunnelTransport' "$work/app/Program.cs"
Tunnel__CredentialPath="$work/app.credential.json" dotnet run --project "$work/app" > "$work/app.log" 2>&1 &
app=$!
trap 'kill $app $edge 2>/dev/null; wait $app $edge 2>/dev/null || true' EXIT

echo "== through the edge"
for _ in $(seq 1 120); do
  if body=$(curl -sS --fail --max-time 2 -H 'Host: app.test' "http://127.0.0.1:$http_port/" 2>/dev/null); then
    echo "answer: $body"
    exit 0
  fi
  sleep 1
done
echo "no answer through the edge within 120 s"
echo "--- edge log"; tail -n 30 "$work/edge.log"
echo "--- app log"; tail -n 30 "$work/app.log"
exit 1
