# Section "registry": the first 200 for a vassal whose image is only in a registry, against
# `docker run -d` of the same image after `docker rmi`: both pull (sourced by
# scripts/bench.sh).
#
# A private registry (Debian's docker-registry, no auth) on a loopback port, its config
# and storage in the run's scratch directory, removed with it. The image is the test
# image plus a layer of REGISTRY_LAYER_MB (32) random MB, so that each pull downloads it.
# REGISTRY_ROUNDS rounds (default 5), probed on the container's own address.

REGISTRY_ROUNDS="${REGISTRY_ROUNDS:-5}"
REGISTRY_LAYER_MB="${REGISTRY_LAYER_MB:-32}"
REGISTRY_PORT="$((${BENCH_BASE_PORT:-19100} + 900))"

section_registry() {
    install_packages docker-registry
    bridge_env
    local reg="$DIR/registry" ref round name pulled=() plain=()
    mkdir -p "$reg"
    printf 'version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: %s/data\nhttp:\n  addr: 127.0.0.1:%s\n' \
        "$reg" "$REGISTRY_PORT" >"$reg/config.yml"
    docker-registry serve "$reg/config.yml" >"$reg/log" 2>&1 &
    local registry_pid=$!
    BG_PIDS+=("$registry_pid")
    wait_200_url "http://127.0.0.1:$REGISTRY_PORT/v2/" 10 || die "the registry did not start"
    ref="127.0.0.1:$REGISTRY_PORT/$PREFIX/app:1"
    # The test image has no shell: the layer is a file copied from the build context.
    mkdir -p "$reg/context"
    head -c "$((REGISTRY_LAYER_MB << 20))" /dev/urandom >"$reg/context/blob"
    printf 'FROM %s\nCOPY blob /blob\n' "$IMAGE" >"$reg/context/Dockerfile"
    docker build -q -t "$ref" "$reg/context" >/dev/null
    docker push -q "$ref" >/dev/null
    CLEANUPS+=("docker rmi -f $ref")
    local image="$IMAGE"
    IMAGE="$ref"
    for round in $(seq 1 "$REGISTRY_ROUNDS"); do
        docker rmi -f "$ref" >/dev/null
        name="$PREFIX-pull$round.ini"
        local unused_cpu=()
        time_bridge_run pulled unused_cpu "$name" none wait_200_in "$name"
        docker rmi -f "$ref" >/dev/null
        local no_publish=()
        time_docker_run plain "$PREFIX-plainpull$round" no_publish wait_200_in "$PREFIX-plainpull$round"
        say "registry round $round: run ${pulled[-1]} ms, docker run ${plain[-1]} ms (both pulling)"
    done
    IMAGE="$image"
    local m_pulled m_plain
    m_pulled="$(printf '%s\n' "${pulled[@]}" | median)"
    m_plain="$(printf '%s\n' "${plain[@]}" | median)"
    echo
    echo "### Registry: first 200 when the image must be pulled"
    echo
    echo "A private registry on 127.0.0.1 (docker-registry, no auth); the image is the test image plus a ${REGISTRY_LAYER_MB} MB random layer, removed from the engine (\`docker rmi\`) before each spawn, so both pull it. $REGISTRY_ROUNDS rounds, probed on the container's own address."
    echo
    echo "| figure | ours | \`docker run -d\` | ratio |"
    echo "| --- | --- | --- | --- |"
    echo "| first 200, image only in the registry (median of $REGISTRY_ROUNDS) | $m_pulled ms | $m_plain ms | $(ratio "$m_pulled" "$m_plain")x |"
    echo
    echo "Per round (ms, ours / \`docker run -d\`): $(for i in "${!pulled[@]}"; do printf '%s/%s ' "${pulled[i]}" "${plain[i]}"; done)"
}
