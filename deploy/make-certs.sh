#!/usr/bin/env bash
# Creates the certificates of a lanlm cluster on a LAN with openssl: a private CA and, signed by
# it, a server certificate for lanlm-coordinator whose subjectAltName lists every host name and
# address given, and client certificates for workers and for `lanlm` users (mutual TLS).
#
#   deploy/make-certs.sh OUTDIR HOST_OR_IP...
#
# OUTDIR gets ca.crt ca.key server.crt server.key worker.crt worker.key client.crt client.key
# (keys mode 0600; EC P-256; valid LANLM_CERT_DAYS days, default 825). Existing files are never
# overwritten: the script refuses a folder that already holds ca.key. Keep ca.key offline once
# the certificates are made; copy ca.crt to every machine, server.* to the coordinator,
# worker.* to the workers, client.* to the users (deploy/LAN.md).
#   coordinator: --tls-cert server.crt --tls-key server.key --tls-client-ca ca.crt
#   worker, lanlm: --tls-ca ca.crt --tls-cert worker.crt|client.crt --tls-key worker.key|client.key
set -euo pipefail

if [[ $# -lt 2 ]]; then
  echo "usage: $0 OUTDIR HOST_OR_IP... (the names and addresses workers and clients dial)" >&2
  exit 2
fi
command -v openssl >/dev/null || { echo "make-certs: openssl is not installed (apt-get install openssl)" >&2; exit 1; }
out=$1
shift
days=${LANLM_CERT_DAYS:-825}
[[ "$days" =~ ^[1-9][0-9]*$ ]] || { echo "make-certs: LANLM_CERT_DAYS=$days is not a positive number" >&2; exit 2; }
mkdir -p "$out"
if [[ -e "$out/ca.key" ]]; then
  echo "make-certs: $out/ca.key exists; refusing to overwrite (use a new folder)" >&2
  exit 1
fi

# subjectAltName: IPv4/IPv6 addresses as IP:, everything else as DNS:.
san=""
for host in "$@"; do
  if [[ "$host" =~ ^[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+$ || "$host" == *:* ]]; then
    entry="IP:$host"
  elif [[ "$host" =~ ^[A-Za-z0-9*]([A-Za-z0-9.-]*[A-Za-z0-9])?$ ]]; then
    entry="DNS:$host"
  else
    echo "make-certs: '$host' is neither a host name nor an IP address" >&2
    exit 2
  fi
  san="${san:+$san,}$entry"
done

umask 077
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

newkey() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }

newkey "$out/ca.key"
openssl req -x509 -new -key "$out/ca.key" -sha256 -days "$days" -subj "/CN=lanlm cluster CA" \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
  -out "$out/ca.crt" 2>/dev/null

# sign NAME CN EXTENSIONS
sign() {
  newkey "$out/$1.key"
  openssl req -new -key "$out/$1.key" -subj "/CN=$2" -out "$tmp/$1.csr" 2>/dev/null
  printf '%s\n' "basicConstraints=critical,CA:FALSE" "keyUsage=critical,digitalSignature" "$3" > "$tmp/$1.ext"
  openssl x509 -req -in "$tmp/$1.csr" -CA "$out/ca.crt" -CAkey "$out/ca.key" -CAcreateserial \
    -CAserial "$tmp/ca.srl" -sha256 -days "$days" -extfile "$tmp/$1.ext" -out "$out/$1.crt" 2>/dev/null
}
sign server "lanlm-coordinator" "extendedKeyUsage=serverAuth
subjectAltName=$san"
# Workers also serve the parameter relay to each other (lanlm-worker --relay-listen): they dial
# peers by address and check this one fixed name instead (worker/param_relay.h kRelayTlsName).
sign worker "lanlm-worker" "extendedKeyUsage=clientAuth,serverAuth
subjectAltName=DNS:lanlm-worker-relay"
sign client "lanlm-client" "extendedKeyUsage=clientAuth"
chmod 0644 "$out"/*.crt
echo "make-certs: wrote $out/{ca,server,worker,client}.{crt,key} (server names: $san; $days days)"
