#!/usr/bin/env bash
# The cost of one hop between edges: latency, request rate and download throughput of requests sent
# to the edge that holds the origin's tunnel (direct) and to another edge of the same cluster, which
# forwards them one hop over its mutual-TLS HTTP/2 connection (hop). Prints rows
#   name | value | ratio
# where ratio is hop / direct (for latency, above 1 is slower; for rates, below 1 is slower).
#
# Usage: bench/cluster-hop.sh [--quick]
#   Needs dotnet, etcd (apt-get install etcd-server), h2load (nghttp2-client), curl. Builds Release.
#   --quick runs fewer requests (a smoke test, a few seconds per row). bench/run may call it as is;
#   it starts and stops everything it needs on loopback ports the OS picks (etcd's two ports are
#   picked free just before it starts: etcd's JSON gateway cannot use port 0).
set -euo pipefail
cd "$(dirname "$0")/.."

quick=0
[ "${1:-}" = "--quick" ] && quick=1
if [ $quick = 1 ]; then
  latency_n=500; rate_n=5000; download_n=50
else
  latency_n=3000; rate_n=60000; download_n=400
fi

for tool in dotnet etcd h2load curl; do
  command -v "$tool" >/dev/null 2>&1 || { echo "cluster-hop: $tool is missing" >&2; exit 2; }
done

work="$(mktemp -d -t tunnel-cluster-hop-XXXXXX)"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1
dotnet build src/Tunnel.Edge -c Release -v q -nologo >/dev/null
dotnet build test-apps/HelloOrigin -c Release -v q -nologo >/dev/null
edge_dll="$PWD/src/Tunnel.Edge/bin/Release/net10.0/tunnel-edge.dll"
origin_dll="$PWD/test-apps/HelloOrigin/bin/Release/net10.0/HelloOrigin.dll"

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Waits (bounded) for a line matching a pattern in a log file; prints it.
wait_line() {
  local file="$1" pattern="$2" seconds="$3" line
  for _ in $(seq 1 $((seconds * 10))); do
    line="$(grep -m1 -E "$pattern" "$file" 2>/dev/null || true)"
    if [ -n "$line" ]; then echo "$line"; return 0; fi
    sleep 0.1
  done
  echo "cluster-hop: no '$pattern' in $file within ${seconds}s:" >&2; tail -n 20 "$file" >&2; return 1
}

# PKI: one CA for both edges; init's edge.pem serves both as tunnel certificate and peer certificate.
dotnet "$edge_dll" init --dir "$work/pki" >/dev/null
dotnet "$edge_dll" issue --dir "$work/pki" --domain hello.test --pem-out "$work/origin" >/dev/null

client_port="$(free_port)"; peer_port="$(free_port)"
etcd --name bench --data-dir "$work/etcd" \
  --listen-client-urls "http://127.0.0.1:$client_port" --advertise-client-urls "http://127.0.0.1:$client_port" \
  --listen-peer-urls "http://127.0.0.1:$peer_port" --initial-advertise-peer-urls "http://127.0.0.1:$peer_port" \
  --initial-cluster "bench=http://127.0.0.1:$peer_port" >"$work/etcd.log" 2>&1 &
pids+=($!)
wait_line "$work/etcd.log" "serving insecure client requests" 30 >/dev/null

start_edge() {
  local name="$1"
  dotnet "$edge_dll" serve --dir "$work/pki" --name "$name" --listen 127.0.0.1 --tunnel-port 0 --http-port 0 \
    --https-port -1 --admin-port 0 --etcd "http://127.0.0.1:$client_port" --peer-port 0 >"$work/$name.log" 2>&1 &
  pids+=($!)
}
start_edge direct
start_edge hop
direct_line="$(wait_line "$work/direct.log" "tunnels on" 60)"
hop_line="$(wait_line "$work/hop.log" "tunnels on" 60)"
direct_tunnel="$(sed -E 's/.*tunnels on [^ ]+:([0-9]+),.*/\1/' <<<"$direct_line")"
direct_visitor="$(sed -E 's/.*visitors on http:\/\/[^ ]+:([0-9]+).*/\1/' <<<"$direct_line")"
hop_visitor="$(sed -E 's/.*visitors on http:\/\/[^ ]+:([0-9]+).*/\1/' <<<"$hop_line")"

Tunnel__Edges__0="127.0.0.1:$direct_tunnel" Tunnel__Hostnames__0=hello.test \
Tunnel__CertificatePath="$work/origin.pem" Tunnel__CertificateKeyPath="$work/origin.key" \
Tunnel__EdgeCaPath="$work/pki/ca.pem" Tunnel__EdgeServerName=localhost \
Logging__LogLevel__Default=Warning dotnet "$origin_dll" >"$work/origin.log" 2>&1 &
pids+=($!)

# Both edges answer for the app before measuring: the hop edge once the route reached it through etcd.
for port in "$direct_visitor" "$hop_visitor"; do
  ok=0
  for _ in $(seq 1 300); do
    if [ "$(curl -s -o /dev/null -w '%{http_code}' -H 'Host: hello.test' "http://127.0.0.1:$port/")" = 200 ]; then ok=1; break; fi
    sleep 0.1
  done
  [ $ok = 1 ] || { echo "cluster-hop: the edge on $port does not serve the app" >&2; tail -n 20 "$work"/*.log >&2; exit 1; }
done

# h2load over h2c prior knowledge; :authority is the app's hostname, the connection goes to the edge.
run_h2load() {
  local port="$1"; shift
  h2load --connect-to="127.0.0.1:$port" "$@" 2>&1
}
mean_ms() { # mean "time for request" in ms
  awk '/time for request:/ { v=$6; if (v ~ /us$/) { sub(/us$/,"",v); v=v/1000 } else if (v ~ /ms$/) { sub(/ms$/,"",v) } else if (v ~ /s$/) { sub(/s$/,"",v); v=v*1000 }; print v }'
}
req_rate() { awk '/^finished in/ { gsub(",","",$4); print $4 }'; }
mb_rate() { # MB/s from "finished in ..., N req/s, X.XXMB/s"
  awk '/^finished in/ { v=$6; if (v ~ /GB\/s$/) { sub(/GB\/s$/,"",v); v=v*1024 } else if (v ~ /MB\/s$/) { sub(/MB\/s$/,"",v) } else if (v ~ /KB\/s$/) { sub(/KB\/s$/,"",v); v=v/1024 } else { sub(/B\/s$/,"",v); v=v/1048576 }; print v }'
}
check() { # fails the run when any request failed
  local out="$1" what="$2"
  if ! grep -qE "requests: .* ([0-9]+) succeeded, 0 failed, 0 errored" <<<"$out"; then
    echo "cluster-hop: $what had failed requests:" >&2; grep -E "^requests:|status codes" <<<"$out" >&2; exit 1
  fi
}

declare -A result
for target in direct hop; do
  port=$([ $target = direct ] && echo "$direct_visitor" || echo "$hop_visitor")
  out="$(run_h2load "$port" -n 200 -c 4 -m 4 http://hello.test/)"   # warm-up
  out="$(run_h2load "$port" -n "$latency_n" -c 1 -m 1 http://hello.test/)"; check "$out" "$target latency"
  result[$target.latency]="$(mean_ms <<<"$out")"
  out="$(run_h2load "$port" -n "$rate_n" -c 16 -m 10 http://hello.test/)"; check "$out" "$target rate"
  result[$target.rate]="$(req_rate <<<"$out")"
  out="$(run_h2load "$port" -n "$download_n" -c 4 -m 1 "http://hello.test/download?bytes=1048576")"; check "$out" "$target download"
  result[$target.mbps]="$(mb_rate <<<"$out")"
done

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b == 0) print "n/a"; else printf "%.2f\n", a / b }'; }
[ -n "${BENCH_BIN:-}" ] || echo "name | value | ratio"
echo "cluster direct latency (GET /, 1 connection, mean) | ${result[direct.latency]} ms | 1.00"
echo "cluster one-hop latency (GET /, 1 connection, mean) | ${result[hop.latency]} ms | $(ratio "${result[hop.latency]}" "${result[direct.latency]}")"
echo "cluster direct rate (GET /, 16 connections x 10 streams) | ${result[direct.rate]} req/s | 1.00"
echo "cluster one-hop rate (GET /, 16 connections x 10 streams) | ${result[hop.rate]} req/s | $(ratio "${result[hop.rate]}" "${result[direct.rate]}")"
echo "cluster direct download (1 MiB, 4 connections) | ${result[direct.mbps]} MB/s | 1.00"
echo "cluster one-hop download (1 MiB, 4 connections) | ${result[hop.mbps]} MB/s | $(ratio "${result[hop.mbps]}" "${result[direct.mbps]}")"
