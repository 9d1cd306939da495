#!/usr/bin/env bash
# Installs the Debian packages the test suite drives for real, when they are missing.
set -euo pipefail
need=()
command -v softhsm2-util >/dev/null || need+=(softhsm2)
[ -x /usr/bin/chromium ] || need+=(chromium)
command -v bearerbox >/dev/null || need+=(kannel)
[ -x /usr/lib/kannel/test/fakesmsc ] || command -v fakesmsc >/dev/null || need+=(kannel-extras)
command -v msgfmt >/dev/null || need+=(gettext)
[ -f /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] || need+=(fonts-dejavu-core)  # counter letters
command -v pdfsig >/dev/null || need+=(poppler-utils)  # pdfsig, pdftoppm (signing)
command -v qpdf >/dev/null || need+=(qpdf)
command -v xmlsec1 >/dev/null || need+=(xmlsec1)  # pysaml2 signs and verifies SAML with it (product, not only tests)
command -v node >/dev/null || need+=(nodejs)  # openid-client plays a portal (clients/openid-client)
command -v npm >/dev/null || need+=(npm)
command -v nginx >/dev/null || need+=(nginx-light)  # the scale-out recipe (deploy/nginx) in front of instances
if [ ${#need[@]} -eq 0 ]; then exit 0; fi
echo "Installing Debian packages: ${need[*]}"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
# Debian starts the system's nginx on port 80 at installation: the tests run their own.
if [[ " ${need[*]} " == *" nginx-light "* ]]; then
  $SUDO service nginx stop >/dev/null 2>&1 || true
fi
