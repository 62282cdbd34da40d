#!/usr/bin/env bash
# Writes the secrets deploy/compose.yaml mounts into deploy/compose/secrets/: a database
# password and URL, the phone-hash key, and two API keys (a `vietjet` channel key and a
# `write` operator key `ops`) with their hashes. Existing files are kept, so running it
# again never rotates anything by surprise; delete a file to replace it.
#
# Hashes are made by `closeout api hash-key`: by the binary $CLOSEOUT names when set,
# otherwise by the compose image (built here if missing). No secret is printed.
set -euo pipefail

cd "$(dirname "$0")"
dir=secrets
umask 077
mkdir -p "$dir"
chmod 0700 "$dir"

random_hex() { openssl rand -hex "$1"; }

# Compose bind-mounts secret files as they are, owner and mode included, and the
# containers run as UID 10001: the mounted files must be world-readable, which is safe
# only because the directory itself is 0700.
write_mounted() {
    local name=$1 value=$2
    # Non-empty: a run cut short must not leave an empty file that is kept for ever.
    if [[ -s $dir/$name ]]; then
        echo "kept    $dir/$name"
        return
    fi
    printf '%s\n' "$value" >"$dir/$name"
    chmod 0644 "$dir/$name"
    echo "wrote   $dir/$name"
}

hash_key() {
    if [[ -n ${CLOSEOUT:-} ]]; then
        "$CLOSEOUT" api hash-key
    else
        docker run --rm -i --network none closeout:local api hash-key
    fi
}

if [[ ! -s $dir/postgres_password ]]; then
    password=$(random_hex 24)
    write_mounted postgres_password "$password"
    rm -f "$dir/database_url"
    write_mounted database_url "postgres://closeout:${password}@postgres:5432/closeout"
else
    echo "kept    $dir/postgres_password"
    write_mounted database_url \
        "postgres://closeout:$(cat "$dir/postgres_password")@postgres:5432/closeout"
fi

# At least 32 characters: 64 hex digits.
write_mounted cooldown_hash_key_1 "$(random_hex 32)"
# Ed25519 seed for deletion certificates: 32 random bytes, base64 (what
# `closeout certificate keygen` prints).
write_mounted certificate_signing_key "$(head -c 32 /dev/urandom | base64)"

if [[ -z ${CLOSEOUT:-} ]] && ! docker image inspect closeout:local >/dev/null 2>&1; then
    echo "building closeout:local to hash the API keys"
    docker build -f ../Dockerfile -t closeout:local ../..
fi

# The keys themselves stay here (0600, never mounted): hand vietjet.key to the channel
# and use ops.key yourself. Only their hashes reach the containers.
for principal in vietjet ops; do
    key=$dir/$principal.key
    hashes=${principal}_key_hashes
    if [[ ! -s $key ]]; then
        random_hex 32 >"$key"
        chmod 0600 "$key"
        rm -f "$dir/$hashes"
        echo "wrote   $key"
    else
        echo "kept    $key"
    fi
    write_mounted "$hashes" "$(hash_key <"$key")"
done
