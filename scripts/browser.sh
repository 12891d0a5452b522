#!/usr/bin/env bash
# Ensures headless Chromium, pdftotext/pdfinfo (poppler-utils) and openssl are installed, as the
# tests of report.html expect: they render it in a real browser, print it to PDF, read the PDF's
# text, and run the OpenSSL commands it gives.
# Installs the Debian packages with apt-get where missing (a fresh Debian CI machine).
set -euo pipefail
missing=()
command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || missing+=(chromium)
{ command -v pdftotext >/dev/null 2>&1 && command -v pdfinfo >/dev/null 2>&1; } || missing+=(poppler-utils)
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "browser.sh: ${missing[*]} missing and no apt-get to install them" >&2
  exit 1
fi
sudo=""
if [ "$(id -u)" != 0 ]; then sudo=sudo; fi
echo "browser.sh: installing ${missing[*]}" >&2
$sudo apt-get update -qq >&2
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >&2
