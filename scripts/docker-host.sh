# shellcheck shell=bash
# Sourced by preflight.sh and ops.sh: runs the docker CLI against a stack's Docker host.
#   docker_host_init HOST STACKFILE   HOST is unix://, tcp:// or ssh://[user@]host[:port]; for ssh://
#                                     the notes:sshOpts list is read from STACKFILE
#   on_host [-t] docker ARGS...       locally with -H HOST, or on the host over ssh with sshOpts
#                                     (the docker CLI's own ssh helper cannot take ssh options);
#                                     -t allocates a terminal for an interactive command;
#                                     $host_timeout (seconds) bounds the command when set
#   docker_tls_init GET               for a tcp:// host whose stack has notes:dockerTlsCa, Cert and
#                                     Key (GET KEY prints notes:KEY, nothing when unset): the docker
#                                     CLI verifies the daemon and presents the client certificate
docker_host=""
ssh_args=()

# stack_file_value FILE KEY prints a scalar notes:KEY of a stack file (block style, as pulumi writes).
stack_file_value() {
  awk -v key="notes:$2:" '{ v = $0; sub(/^ +/, "", v) } $0 ~ /^ / && index(v, key) == 1 {
    v = substr(v, length(key) + 1); sub(/^ +/, "", v); sub(/ +#.*$/, "", v); gsub(/^["\x27]|["\x27]$/, "", v); print v; exit }' "$1"
}

docker_host_init() {
  docker_host=$1
  ssh_args=()
  case $docker_host in
    unix://* | tcp://*) return 0 ;;
    ssh://*) ;;
    *) echo "dockerHost $docker_host must start with unix://, tcp:// or ssh://" >&2; return 1 ;;
  esac
  local t=${docker_host#ssh://} user="" port=22 opts=()
  t=${t%/}
  case $t in *@*) user=${t%%@*} t=${t#*@} ;; esac
  case $t in \[*\]:*) port=${t##*]:} t=${t%:*} ;; \[*\]) ;; *:*) port=${t##*:} t=${t%:*} ;; esac
  t=${t#[}
  t=${t%]}
  mapfile -t opts < <(awk '
    /^ +notes:sshOpts:/ { in_opts = 1; next }
    in_opts && /^ +- / { sub(/^ +- */, ""); gsub(/^["\x27]|["\x27]$/, ""); print; next }
    in_opts { exit }' "$2")
  ssh_args=(-o ConnectTimeout=5 -p "$port")
  [ -n "$user" ] && ssh_args+=(-l "$user")
  ssh_args+=("${opts[@]}" -- "$t")
}

# The material goes into a private directory removed when the shell exits, as the program's own
# commands do (infra/host.go): the docker CLI reads TLS files only, never the environment.
docker_tls_init() {
  [[ $docker_host == tcp://* ]] || return 0
  local get=$1 ca
  ca=$("$get" dockerTlsCa) || return 1
  [ -n "$ca" ] || return 0
  docker_tls_dir=$(umask 077 && mktemp -d) || return 1
  trap 'rm -rf "$docker_tls_dir"' EXIT
  printf '%s\n' "$ca" >"$docker_tls_dir/ca.pem" || return 1
  "$get" dockerTlsCert >"$docker_tls_dir/cert.pem" || return 1
  "$get" dockerTlsKey >"$docker_tls_dir/key.pem" || return 1
  export DOCKER_CERT_PATH=$docker_tls_dir DOCKER_TLS_VERIFY=1
}

on_host() {
  local tty=() pre=()
  [ -n "${host_timeout:-}" ] && pre=(timeout "$host_timeout")
  if [ "${1:-}" = -t ]; then tty=(-t); shift; fi
  shift # the word "docker"
  case $docker_host in
    ssh://*)
      local remote
      remote=$(printf '%q ' docker "$@")
      "${pre[@]}" ssh "${tty[@]}" "${ssh_args[@]}" "$remote"
      ;;
    *) "${pre[@]}" docker -H "$docker_host" "$@" ;;
  esac
}
