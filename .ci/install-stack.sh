#!/usr/bin/env bash
# Installs the real daemons the test suite runs (Debian 12, root, no systemd).
# Idempotent: a second run only checks. Facts behind each step: shared/notes/real-stack.md.
set -euo pipefail

EXIM_ROOT=/opt/ferrypost-stack/exim
EXIM_TEST_CONF=/var/tmp/ferrypost-exim/exim.conf   # the one path tests may pass to exim -C as root

need_apt=0
for bin in /usr/sbin/postfix /usr/sbin/dovecot /usr/bin/gpg /usr/bin/syncthing /usr/bin/swaks /usr/bin/nncp-exec /usr/bin/time; do
  [ -x "$bin" ] || need_apt=1
done
[ -x "$EXIM_ROOT/usr/sbin/exim4" ] || need_apt=1

if [ "$need_apt" = 1 ]; then
  export DEBIAN_FRONTEND=noninteractive
  # Maintainer scripts must not start daemons: tests start their own instances on loopback.
  [ -e /usr/sbin/policy-rc.d ] || { printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod 755 /usr/sbin/policy-rc.d; }
  apt-get update -qq
  printf '%s\n' 'postfix postfix/main_mailer_type select No configuration' \
                'postfix postfix/mailname string gw.test' | debconf-set-selections
  apt-get install -y -qq --no-install-recommends postfix swaks dovecot-imapd gnupg syncthing nncp libidn12 ca-certificates time >/dev/null
  [ -f /etc/postfix/main.cf ] || cp /usr/share/postfix/main.cf.debian /etc/postfix/main.cf
  # Exim conflicts with Postfix as a package; its binary runs fine unpacked beside it.
  if [ ! -x "$EXIM_ROOT/usr/sbin/exim4" ]; then
    tmp=$(mktemp -d)
    (cd "$tmp" && apt-get download -qq exim4-daemon-light exim4-base exim4-config 2>/dev/null)
    mkdir -p "$EXIM_ROOT"
    for d in "$tmp"/*.deb; do dpkg -x "$d" "$EXIM_ROOT"; done
    rm -rf "$tmp"
  fi
fi

getent group vmail >/dev/null || groupadd -g 5000 vmail
getent passwd vmail >/dev/null || useradd -u 5000 -g 5000 -M -d /nonexistent -s /usr/sbin/nologin vmail
getent passwd Debian-exim >/dev/null || adduser --system --group --quiet --home /var/spool/exim4 --no-create-home --disabled-login --force-badname Debian-exim
mkdir -p /etc/exim4 "$(dirname "$EXIM_TEST_CONF")"
grep -qxF "$EXIM_TEST_CONF" /etc/exim4/trusted_configs 2>/dev/null || echo "$EXIM_TEST_CONF" >> /etc/exim4/trusted_configs
chmod 644 /etc/exim4/trusted_configs

if ldd "$EXIM_ROOT/usr/sbin/exim4" | grep -q 'not found'; then
  echo "install-stack: exim is missing shared libraries:" >&2; ldd "$EXIM_ROOT/usr/sbin/exim4" | grep 'not found' >&2; exit 1
fi
echo "install-stack: postfix $(postconf -d -h mail_version 2>/dev/null), exim $("$EXIM_ROOT/usr/sbin/exim4" --version 2>/dev/null | head -1 | awk '{print $3}'), dovecot $(dovecot --version | awk '{print $1}'), $(gpg --version | head -1), syncthing $(syncthing --version | awk '{print $2}'), nncp $(nncp-exec -version 2>&1 | head -1 | awk '{print $3}')"
