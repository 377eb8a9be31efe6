#!/usr/bin/env bash
# Installs what the tests drive besides the .NET SDK: Debian's packages (as root, with apt-get) and the
# gRPC client for Node (npm). Safe to run again: it installs only what is missing. Without root it
# names what is missing and the tests that need it fail with the package's name.
set -uo pipefail
cd "$(dirname "$0")/.."

need=()
have() { command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ] || [ -x "/usr/bin/$1" ]; }
have curl || need+=(curl)
have h2load || need+=(nghttp2-client)   # h2load and nghttp (which prints the frames it receives)
have dnsmasq || need+=(dnsmasq)
have chromium || need+=(chromium)
have prometheus || need+=(prometheus)
have etcd || need+=(etcd-server)
have nft || need+=(nftables)            # the fault suite's full run drops packets with nftables
have node || need+=(nodejs)             # the gRPC tests run @grpc/grpc-js
have npm || need+=(npm)
have sshd || need+=(openssh-server)   # a real ssh login through a TCP route
have ssh || need+=(openssh-client)
have named || need+=(bind9)            # the operator's DNS for the DNS record and ACME tests (a dynamic zone, TSIG)
have dig || need+=(bind9-dnsutils)      # dig and nsupdate read and write that zone as real clients
have openssl || need+=(openssl)      # the TLS passthrough test reads the certificate served with s_client
have pebble || need+=(pebble)        # the ACME tests' CA (resolving through the tests' named)

if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    if ! { apt-get update -qq >/dev/null && apt-get install -y -qq "${need[@]}" >/dev/null; }; then
      echo "install-tools: apt-get install ${need[*]} failed; the tests that need them will say so" >&2
    fi
  else
    echo "install-tools: missing ${need[*]}; install them (apt-get install ${need[*]}) or run this as root" >&2
  fi
fi

# npm ci starts from nothing each time; skip it while the installed tree matches the lock file.
grpc_js=tests/grpc-js
if have npm && { [ ! -f "$grpc_js/node_modules/.package-lock.json" ] || [ "$grpc_js/package-lock.json" -nt "$grpc_js/node_modules/.package-lock.json" ]; }; then
  if ! npm ci --prefix "$grpc_js" --no-audit --no-fund >/dev/null 2>&1; then
    echo "install-tools: npm ci --prefix $grpc_js failed; the gRPC client for Node is missing and its tests will say so" >&2
  fi
fi
exit 0
