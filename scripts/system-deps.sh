#!/usr/bin/env bash
# Debian packages Chave drives for real, installed when missing.
#   scripts/system-deps.sh        what the test suite needs (make test): stops if it cannot install
#   scripts/system-deps.sh demo   what the demo of `make run` needs: installs what it can, else says
#                                 exactly which package is missing and what stops working, and goes on
set -euo pipefail
mode="${1:-test}"
need=()
why=()
want() { need+=("$1"); why+=("$2"); }
command -v softhsm2-util >/dev/null || [ -f /usr/lib/softhsm/libsofthsm2.so ] \
  || want softhsm2 "the demo Citizen Card (card sign-in, online registration, recovery) and signing PDFs"
[ -f /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] || want fonts-dejavu-core "the counter's PIN letters (PDF) and the signature stamp on signed PDFs"
command -v pdftoppm >/dev/null || want poppler-utils "the page images for placing a signature on a PDF"
command -v xmlsec1 >/dev/null || want xmlsec1 "the SAML identity provider (pysaml2 signs and verifies with it)"
if [ "$mode" != demo ]; then
  [ -x /usr/bin/chromium ] || want chromium "the browser tests"
  command -v bearerbox >/dev/null || want kannel "the SMS gateway tests"
  [ -x /usr/lib/kannel/test/fakesmsc ] || command -v fakesmsc >/dev/null || want kannel-extras "the SMS gateway tests"
  command -v msgfmt >/dev/null || want gettext "the translation tests"
  command -v qpdf >/dev/null || want qpdf "the signed PDF checks"
  command -v node >/dev/null || want nodejs "openid-client playing a portal (clients/openid-client)"
  command -v npm >/dev/null || want npm "openid-client playing a portal (clients/openid-client)"
  command -v nginx >/dev/null || want nginx-light "the scale-out recipe (deploy/nginx) in front of instances"
fi
if [ ${#need[@]} -eq 0 ]; then exit 0; fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null && { [ "$mode" != demo ] || sudo -n true 2>/dev/null; }; then SUDO="sudo"
  else SUDO="none"; fi
fi
install() {
  [ "$SUDO" != none ] || return 1
  echo "Installing Debian packages: ${need[*]}"
  $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
    "${need[@]}" >/dev/null || return 1
  # Debian starts the system's nginx on port 80 at installation: the tests and benchmarks run their own.
  if [[ " ${need[*]} " == *" nginx-light "* ]]; then $SUDO service nginx stop >/dev/null 2>&1 || true; fi
}
if [ "$mode" != demo ]; then install; exit; fi
if ! install; then
  echo "Some Debian packages the demo uses are missing, and they could not be installed here:" >&2
  for i in "${!need[@]}"; do echo "  - ${need[$i]}: without it, ${why[$i]} will not work" >&2; done
  echo "Install them with: sudo apt-get install ${need[*]}  (then run make run again)." >&2
  echo "Everything else works: signing in with the key, the portals, the personal area, the counter." >&2
fi
