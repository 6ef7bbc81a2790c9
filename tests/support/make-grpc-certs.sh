#!/usr/bin/env bash
# make-grpc-certs.sh DIR - makes a throwaway PKI for gRPC TLS tests:
#   ca.pem/ca.key            the trusted CA
#   server.pem/server.key    CN=localhost, SAN DNS:localhost, IP:127.0.0.1
#   client.pem/client.key    CN=iotca-edge, signed by the CA (mTLS client)
#   rogue-ca.pem, rogue-client.pem/.key   a client from an untrusted CA
set -euo pipefail
dir=${1:?usage: make-grpc-certs.sh DIR}
mkdir -p "$dir"
cd "$dir"

key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }

ca() { # name subject
	key "$1.key"
	openssl req -x509 -new -key "$1.key" -subj "$2" -days 2 -sha256 \
		-addext basicConstraints=critical,CA:TRUE \
		-addext keyUsage=critical,keyCertSign,cRLSign -out "$1.pem" 2>/dev/null
}

leaf() { # name subject ca ext
	key "$1.key"
	openssl req -new -key "$1.key" -subj "$2" -out "$1.csr" 2>/dev/null
	printf '%s\n' "$4" > "$1.ext"
	openssl x509 -req -in "$1.csr" -CA "$3.pem" -CAkey "$3.key" \
		-CAcreateserial -days 2 -sha256 -extfile "$1.ext" -out "$1.pem" 2>/dev/null
	rm -f "$1.csr" "$1.ext"
}

ca ca "/CN=iotca test CA"
ca rogue-ca "/CN=iotca test CA"
leaf server "/CN=localhost" ca "subjectAltName=DNS:localhost,IP:127.0.0.1
extendedKeyUsage=serverAuth"
leaf client "/CN=iotca-edge" ca "extendedKeyUsage=clientAuth"
leaf rogue-client "/CN=iotca-edge" rogue-ca "extendedKeyUsage=clientAuth"
