#!/usr/bin/env bash
# make-certs.sh - a cluster CA and node certificates for dragonraft's transport.
#
#   scripts/make-certs.sh DIR N          CA (if DIR has none) and certificates for nodes 1..N
#   scripts/make-certs.sh DIR ID ID...   ... for the listed node ids (two or more)
# A node that has a certificate in DIR already keeps it.
#   scripts/make-certs.sh --revoke DIR ID  revoke node ID's certificate, rewrite DIR/crl.pem
#
# DIR gets ca.crt and ca.key (the cluster CA; keep ca.key off the nodes), and per
# node nodeID.crt and nodeID.key, whose subjectAltName URI urn:dragonraft:node:ID
# names the node (the transport refuses a peer whose certificate names another
# id than the one it claims), crl.pem (the CA's revocation list, empty at first)
# and cluster.secret (32 random bytes in hex, for the certificate-less PSK mode).
# Keys and the secret are mode 0600 for the user who runs this: run it as the
# server's user (postgres), or chown them.  Settings per node:
#   dragonraft.ssl_cert_file = DIR/nodeID.crt   dragonraft.ssl_key_file = DIR/nodeID.key
#   dragonraft.ssl_ca_file   = DIR/ca.crt       dragonraft.ssl_crl_file = DIR/crl.pem
# Use a CA for this cluster only: every certificate it signs with a node URI is a
# member's.  Only openssl(1) is needed.
set -eu
umask 077

revoke=0
if [ "${1:-}" = "--revoke" ]; then
	revoke=1
	shift
fi
if [ $# -lt 2 ]; then
	sed -n '2,19p' "$0" >&2
	exit 2
fi
dir=$1
shift
mkdir -p "$dir/newcerts"
dir=$(cd "$dir" && pwd)
cnf=$dir/ca.cnf

if [ ! -f "$cnf" ]; then
	cat >"$cnf" <<EOF
[ ca ]
default_ca = dragonraft
[ dragonraft ]
dir = $dir
database = \$dir/index.txt
new_certs_dir = \$dir/newcerts
certificate = \$dir/ca.crt
private_key = \$dir/ca.key
serial = \$dir/serial
crlnumber = \$dir/crlnumber
default_md = sha256
default_days = 825
default_crl_days = 3650
policy = policy_any
unique_subject = no
[ policy_any ]
commonName = supplied
[ req ]
distinguished_name = req_dn
[ req_dn ]
[ v3_ca ]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
EOF
	: >"$dir/index.txt"
	echo 1000 >"$dir/serial"
	echo 1000 >"$dir/crlnumber"
fi

if [ ! -f "$dir/ca.crt" ]; then
	openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
		-keyout "$dir/ca.key" -out "$dir/ca.crt" -days 3650 -sha256 \
		-subj "/CN=dragonraft cluster CA" -config "$cnf" -extensions v3_ca 2>/dev/null
	chmod 644 "$dir/ca.crt"
fi

gencrl() {
	openssl ca -batch -config "$cnf" -gencrl -out "$dir/crl.pem" 2>/dev/null
	chmod 644 "$dir/crl.pem"
}

if [ "$revoke" -eq 1 ]; then
	for id in "$@"; do
		openssl ca -batch -config "$cnf" -revoke "$dir/node$id.crt" 2>/dev/null
		echo "revoked node $id"
	done
	gencrl
	echo "wrote $dir/crl.pem: copy it to every node and reload"
	exit 0
fi

ids=("$@")
if [ $# -eq 1 ]; then
	ids=($(seq 1 "$1"))
fi
for id in "${ids[@]}"; do
	case $id in
	'' | 0 | 0* | *[!0-9]*)
		echo "make-certs: node id \"$id\" is not a decimal number > 0" >&2
		exit 2
		;;
	esac
	if [ -f "$dir/node$id.crt" ]; then
		echo "node $id: $dir/node$id.crt (kept)"
		continue
	fi
	ext=$dir/node$id.ext
	cat >"$ext" <<EOF
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth, clientAuth
subjectAltName = URI:urn:dragonraft:node:$id
EOF
	openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
		-keyout "$dir/node$id.key" -out "$dir/node$id.csr" \
		-subj "/CN=dragonraft node $id" -config "$cnf" 2>/dev/null
	openssl ca -batch -config "$cnf" -notext -extfile "$ext" \
		-in "$dir/node$id.csr" -out "$dir/node$id.crt" 2>/dev/null
	chmod 644 "$dir/node$id.crt"
	rm -f "$dir/node$id.csr" "$ext"
	echo "node $id: $dir/node$id.crt $dir/node$id.key"
done
[ -f "$dir/crl.pem" ] || gencrl
if [ ! -f "$dir/cluster.secret" ]; then
	openssl rand -hex 32 >"$dir/cluster.secret"
fi
echo "CA: $dir/ca.crt  CRL: $dir/crl.pem  secret (PSK mode): $dir/cluster.secret"
