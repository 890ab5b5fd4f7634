#!/usr/bin/env bash
# Prepares a Debian 12 machine to build, test and run Switchboard. Safe to run again: it does
# nothing when everything is already there. Run as root, or as a user who may sudo.
set -euo pipefail

packages=(redis-server redis-tools postgresql postgresql-client ca-certificates curl build-essential pkg-config
    chromium chromium-driver dovecot-imapd dovecot-lmtpd python3-aiosmtpd openssl
    kamailio kamailio-extra-modules kamailio-utils-modules sip-tester kannel kannel-extras python3-venv prometheus)

if [[ $(id -u) -eq 0 ]]; then
    sudo=()
elif command -v sudo >/dev/null 2>&1; then
    sudo=(sudo)
else
    echo "setup-debian: run as root or install sudo" >&2
    exit 1
fi

missing=()
# chromium + chromedriver: the web chat widget is tested in a real headless browser.
for cmd in redis-server redis-cli cc curl pkg-config chromium chromedriver; do
    command -v "$cmd" >/dev/null 2>&1 || missing+=("$cmd")
done
[[ -e /etc/ssl/certs/ca-certificates.crt ]] || missing+=(ca-certificates)
# PostgreSQL's server binaries are not on PATH on Debian; the tests look under
# /usr/lib/postgresql/<version>/bin (tests/common/postgres.rs).
compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || missing+=(initdb)
command -v psql >/dev/null 2>&1 || missing+=(psql)
# The email tests run a private Dovecot (IMAP with IDLE) and aiosmtpd; Debian's python modules
# are seen by /usr/bin/python3 only. openssl makes their test certificates.
[[ -x /usr/sbin/dovecot ]] || missing+=(dovecot)
/usr/bin/python3 -c 'import aiosmtpd' >/dev/null 2>&1 || missing+=(aiosmtpd)
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
# Voice: a private Kamailio (evapi and jansson come in kamailio-extra-modules) and SIPp as the
# callers and agents' phones (scripts/kamailio-demo.sh, deploy/kamailio/).
[[ -x /usr/sbin/kamailio ]] || missing+=(kamailio)
compgen -G '/usr/lib/*/kamailio/modules/evapi.so' >/dev/null || missing+=(kamailio-extra-modules)
compgen -G '/usr/lib/*/kamailio/modules/http_client.so' >/dev/null || missing+=(kamailio-utils-modules)
command -v sipp >/dev/null 2>&1 || missing+=(sipp)
# SMS: a private Kannel (bearerbox, smsbox) with its fake SMSC as the phone network.
[[ -x /usr/sbin/bearerbox ]] || missing+=(kannel)
[[ -x /usr/lib/kannel/test/fakesmsc ]] || missing+=(kannel-extras)
/usr/bin/python3 -c 'import ensurepip' >/dev/null 2>&1 || missing+=(python3-venv)
# promtool (in Debian's prometheus package; its service is not started) checks deploy/prometheus/.
command -v promtool >/dev/null 2>&1 || missing+=(promtool)

if [[ ${#missing[@]} -eq 0 ]]; then
    echo "setup-debian: system packages already present"
else
    echo "setup-debian: missing ${missing[*]}; installing ${packages[*]}"
    # Tests and scripts/run.sh start their own Redis, PostgreSQL and Dovecot on their own ports; a
    # system-wide one started by the package would hold 6379/5432/143 and outlive us. Debian asks
    # policy-rc.d first. (postgresql-common still creates its default cluster `main` on
    # install; that is harmless as long as it is not started.)
    policy=/usr/sbin/policy-rc.d
    created_policy=0
    remove_policy() {
        # Only a policy file we created is ours to remove.
        if [[ $created_policy -eq 1 ]]; then
            "${sudo[@]}" rm -f "$policy"
        fi
    }
    trap remove_policy EXIT
    if [[ ! -e $policy ]]; then
        created_policy=1
        printf '#!/bin/sh\nexit 101\n' | "${sudo[@]}" tee "$policy" >/dev/null
        "${sudo[@]}" chmod 755 "$policy"
    fi
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${packages[@]}"
fi

# Debian's own rustc is far older than the 1.95 this crate needs, so the toolchain comes from
# rustup, installed for the invoking user rather than root.
if [[ -f $HOME/.cargo/env ]]; then
    # shellcheck disable=SC1091
    . "$HOME/.cargo/env"
fi
if ! command -v cargo >/dev/null 2>&1; then
    echo "setup-debian: installing the Rust toolchain with rustup"
    curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs |
        sh -s -- -y --profile minimal --default-toolchain 1.95.0 --component rustfmt,clippy
    # shellcheck disable=SC1091
    . "$HOME/.cargo/env"
fi
if command -v rustup >/dev/null 2>&1 && ! { cargo fmt --version && cargo clippy --version; } >/dev/null 2>&1; then
    rustup component add rustfmt clippy
fi

if cargo nextest --version >/dev/null 2>&1; then
    echo "setup-debian: cargo-nextest found; scripts/test.sh uses it"
else
    echo "setup-debian: cargo-nextest not installed; scripts/test.sh uses cargo test"
fi

# SMS over SMPP is tested against a real SMSC simulator (PyPI smpp34), in a virtualenv of its own
# so the system Python stays as Debian ships it. crates/testkit/src/smsc.rs looks for it here.
smsc_venv=${XDG_DATA_HOME:-$HOME/.local/share}/switchboard/py
if "$smsc_venv/bin/python3" -c 'import smpp34' >/dev/null 2>&1; then
    echo "setup-debian: smpp34 already in $smsc_venv"
else
    echo "setup-debian: installing the SMPP simulator (smpp34) into $smsc_venv"
    /usr/bin/python3 -m venv "$smsc_venv"
    "$smsc_venv/bin/pip" install --quiet --disable-pip-version-check 'smpp34==1.5.0'
fi
