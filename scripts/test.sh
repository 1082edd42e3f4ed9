#!/usr/bin/env bash
# The repository's one test command. It installs what the tests need (PostgreSQL, Chromium),
# runs every test of Keyway.slnx in Release, and ends with a line "N passed, N failed".
# Extra arguments go to `dotnet test`, e.g. `scripts/test.sh --filter FullyQualifiedName~Proxy`.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"

# --- 1. What the tests need -------------------------------------------------------------
have_postgres() {
  compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || command -v initdb >/dev/null
}
have_chromium() {
  command -v chromium >/dev/null || command -v chromium-browser >/dev/null
}
have_node() {
  command -v node >/dev/null && command -v npm >/dev/null
}
# The AWS Signature Version 4 tests check Keyway's signatures with botocore (tests/sigv4-verifier).
have_botocore() {
  /usr/bin/python3 -c 'import botocore' 2>/dev/null
}

# The Digest tests answer Apache httpd's mod_auth_digest (tests/…/ApacheDigestServer.cs). apache2-bin is the server
# and its modules without the apache2 service, which would start on port 80.
have_apache() {
  [[ -x /usr/sbin/apache2 && -f /usr/lib/apache2/modules/mod_auth_digest.so ]]
}

# The packaging tests build the .deb (dpkg-deb) and check the unit (systemd-analyze).
have_packaging_tools() {
  command -v dpkg-deb >/dev/null && command -v systemd-analyze >/dev/null
}

missing=()
have_postgres || missing+=(postgresql)
have_chromium || missing+=(chromium)
have_node || missing+=(nodejs npm)
have_botocore || missing+=(python3-botocore)
have_apache || missing+=(apache2-bin)
have_packaging_tools || missing+=(dpkg systemd)
if ((${#missing[@]} > 0)); then
  if [[ "$(id -u)" -ne 0 ]]; then
    echo "scripts/test.sh: missing ${missing[*]}. Install with:" >&2
    echo "  sudo apt-get install -y ${missing[*]}" >&2
    exit 1
  fi
  echo "scripts/test.sh: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The webhook tests check Keyway's signatures with an independent implementation, the npm package
# standardwebhooks; the OAuth 1.0a tests send requests to an upstream that recomputes their signatures
# with the npm package oauth-1.0a; the DPoP tests run against an authorization server and a resource
# server that enforce DPoP (oidc-provider, jose). Each at the versions its lock file pins (installed
# once; again when the lock changes).
for node_app in tests/webhook-verifier tests/oauth1-verifier tests/dpop-server; do
  if [[ ! -f "$node_app/node_modules/.package-lock.json" || "$node_app/package-lock.json" -nt "$node_app/node_modules/.package-lock.json" ]]; then
    echo "scripts/test.sh: installing $node_app's npm packages"
    npm ci --prefix "$node_app" --no-audit --no-fund --loglevel=error >/dev/null
  fi
done

# --- 2. A scratch directory for results and for the tests' clusters and data dirs -------
work="$(mktemp -d -t keyway-tests.XXXXXXXX)"
# PostgreSQL runs as user postgres when we are root: it must be able to reach its directory.
chmod 0755 "$work"
mkdir -m 0755 "$work/tmp"
export KEYWAY_TEST_TEMP="$work/tmp"

cleanup() {
  # Safety net: a PostgreSQL cluster the test host failed to stop (e.g. it crashed) dies here.
  local pidfile pid
  while IFS= read -r pidfile; do
    pid="$(head -n 1 "$pidfile" 2>/dev/null || true)"
    if [[ "$pid" =~ ^[0-9]+$ ]]; then kill -KILL "$pid" 2>/dev/null || true; fi
  done < <(find "$work" -name postmaster.pid 2>/dev/null)
  rm -rf "$work"
}
trap cleanup EXIT

# --- 3. The tests -------------------------------------------------------------------------
results="$work/results"
status=0
dotnet test Keyway.slnx -c Release \
  --logger "console;verbosity=minimal" \
  --logger trx \
  --results-directory "$results" \
  "$@" || status=$?

# --- 4. The closing line, from the TRX files ----------------------------------------------
counter() { # counter NAME FILE -> the value of attribute NAME of <Counters .../>
  local value
  value="$(grep -o '<Counters [^>]*>' "$2" | head -n 1 | sed -n "s/.* $1=\"\([0-9]*\)\".*/\1/p")"
  echo "${value:-0}"
}
passed=0 failed=0 skipped=0 trx_files=0
while IFS= read -r trx; do
  trx_files=$((trx_files + 1))
  total=$(counter total "$trx"); executed=$(counter executed "$trx")
  passed=$((passed + $(counter passed "$trx")))
  for name in failed error timeout aborted; do
    failed=$((failed + $(counter "$name" "$trx")))
  done
  skipped=$((skipped + total - executed))
done < <(find "$results" -name '*.trx' 2>/dev/null)

# A Keyway server that died under running tests left a report (tests/…/KeywayProcess.cs): show it.
if ((failed > 0)) && compgen -G "$work/tmp/unexpected-exits/*.log" >/dev/null; then
  for report in "$work"/tmp/unexpected-exits/*.log; do
    echo
    cat "$report"
  done
fi

line="$passed passed, $failed failed"
if ((skipped > 0)); then line="$line, $skipped skipped"; fi
echo
echo "$line"

if ((status != 0)); then exit "$status"; fi
if ((failed > 0)); then exit 1; fi
if ((passed == 0)); then
  if ((trx_files == 0)); then echo "scripts/test.sh: no test results were written" >&2; fi
  echo "scripts/test.sh: no test ran" >&2
  exit 1
fi
