# Sourced by start.sh and test.sh: install what is missing, idempotently.
# Debian/Ubuntu packages via apt-get (as root, or with sudo); Python deps in .venv.

_sudo() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

_apt_updated=0
_apt_install() {
    if [ "$_apt_updated" -eq 0 ]; then
        _sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq
        _apt_updated=1
    fi
    _sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

bootstrap_packages() {
    local missing=()
    if ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then
        missing+=(postgresql postgresql-contrib)
    fi
    command -v redis-server >/dev/null || missing+=(redis-server)
    command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || missing+=(nginx)
    command -v python3 >/dev/null || missing+=(python3)
    python3 -c 'import venv, ensurepip' 2>/dev/null || missing+=(python3-venv)
    command -v pgbouncer >/dev/null || [ -x /usr/sbin/pgbouncer ] || missing+=(pgbouncer)
    command -v wrk >/dev/null || missing+=(wrk)
    command -v jq >/dev/null || missing+=(jq)  # the README's quick start reads ids with jq
    if [ "$(id -u)" -eq 0 ] && ! id postgres >/dev/null 2>&1; then
        missing+=(postgresql)
    fi
    if [ ${#missing[@]} -gt 0 ]; then
        echo "== installing ${missing[*]}"
        _apt_install "${missing[@]}"
    fi
}

bootstrap_venv() {
    local stamp=.venv/.installed
    if [ ! -x .venv/bin/python ]; then
        echo "== creating .venv"
        python3 -m venv .venv
    fi
    if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
        echo "== installing Python dependencies"
        .venv/bin/pip install -q --disable-pip-version-check -e '.[dev]'
        touch "$stamp"
    fi
}

# The browser tests (tests/browser): Debian's chromium, driven by Playwright (its
# browsers cannot be downloaded here), and axe-core from npm into tests/browser/.
bootstrap_browser() {
    local missing=()
    command -v chromium >/dev/null || [ -x /usr/bin/chromium ] || missing+=(chromium)
    command -v npm >/dev/null || missing+=(nodejs npm)
    if [ ${#missing[@]} -gt 0 ]; then
        echo "== installing ${missing[*]}"
        _apt_install "${missing[@]}"
    fi
    local lock=tests/browser/package-lock.json stamp=tests/browser/node_modules/.installed
    if [ ! -f "$stamp" ] || [ "$lock" -nt "$stamp" ]; then
        echo "== installing tests/browser npm packages"
        (cd tests/browser && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
        touch "$stamp"
    fi
}
