# Sections "callgrind" and "plots" (sourced by scripts/bench.sh).

# Instructions callgrind collects for `hot_paths PATH REPEAT`.
callgrind_ir() { # path repeat
    valgrind --tool=callgrind --callgrind-out-file="$DIR/callgrind.out" \
        "$HOT_PATHS" "$1" "$2" 2>&1 >/dev/null | awk '/Collected :/ { print $NF }'
}

section_callgrind() {
    say "callgrind: building the hot_paths example"
    cargo build --release -q -p uwsgi-docker-core --example hot_paths
    HOT_PATHS="${CARGO_TARGET_DIR:-$REPO/target}/release/examples/hot_paths"
    local none attach http spec
    none="$(callgrind_ir none 1)"
    attach="$(callgrind_ir attach 3)"
    http="$(callgrind_ir http 1000)"
    spec="$(callgrind_ir spec 1000)"
    per() { awk -v a="$1" -v b="$none" -v n="$2" 'BEGIN { printf "%.0f", (a - b) / n }'; }
    cat <<EOF

### Instruction counts of the core's hot paths

\`valgrind --tool=callgrind\` of \`uwsgi-docker-core/examples/hot_paths.rs\` (release build): a path's count minus the count of a run that only builds the inputs ($none), divided by the repetitions. They do not depend on the machine's load.

| path | instructions | repetitions |
| --- | --- | --- |
$(row "attach stream, per MB: multiplexed frames in 64 KiB reads -> demuxer -> line splitter -> \`push_relay_line\` into a batch (10,000 lines)" "$(per "$attach" 3)" 3)
$(row "HTTP reader, per reply: a 201 create reply with Content-Length" "$(per "$http" 1000)" 1000)
$(row "spec parse of the seed's quickstart vassal" "$(per "$spec" 1000)" 1000)
EOF
}

# The storm's timelines (storm-N-VARIANT-RUN.dat): containers answering 200 over time, ours
# against `docker run -d` 8 in parallel, every run, one panel per N measured.
plot_storm() { # gnuplot_script
    local gp="$1" sizes n run v plots
    mapfile -t sizes < <(find "$OUT" -maxdepth 1 -name 'storm-*-ours-*.dat' -printf '%f\n' | cut -d- -f2 | sort -nu)
    ((${#sizes[@]})) || return 0
    local -A colour=([ours]='#1f77b4' [par8]='#ff7f0e') label=([ours]='ours (mv of the files)' [par8]='docker run -d, 8 in parallel')
    {
        echo "set terminal pngcairo size 900,$((300 * ${#sizes[@]})) font 'sans,9'"
        echo "set output '$OUT/storm.png'"
        echo "set multiplot layout ${#sizes[@]},1 title 'Storm: containers answering 200 on their published port (probed about every 100 ms), each run'"
        echo "set grid; set key top left; set xlabel 's after the mv / the first docker run'; set ylabel 'answering 200'"
        for n in "${sizes[@]}"; do
            echo "set title '$n at once'; set yrange [0:$((n + n / 10))]"
            plots=()
            for v in ours par8; do
                for run in $(find "$OUT" -maxdepth 1 -name "storm-$n-$v-*.dat" -printf '%f\n' | sed 's/.*-\([0-9]*\)\.dat/\1/' | sort -n); do
                    plots+=("'$OUT/storm-$n-$v-$run.dat' using 1:2 with steps lw 1.5 dt $run lc rgb '${colour[$v]}' title '${label[$v]}, run $run'")
                done
            done
            (IFS=, && echo "plot ${plots[*]}")
        done
        echo "unset multiplot"
    } >"$gp"
    gnuplot "$gp" || die "gnuplot failed on the storm timelines"
}

# The reload timelines (one panel per variant) and the spawn latency distribution.
section_plots() {
    local v panels=0 gp="$DIR/plots.gp"
    for v in "${RELOAD_VARIANTS[@]}"; do [[ -s "$OUT/reload-$v.dat" ]] && panels=$((panels + 1)); done
    if ((panels)); then
        {
            echo "set terminal pngcairo size 900,$((220 * panels)) font 'sans,9'"
            echo "set output '$OUT/reload-timeline.png'"
            echo "set multiplot layout $panels,1 title 'Reload under load: answers and failures per second (wrk, ${RELOAD_CONNS} connections); dashed lines: reloads'"
            echo "set xrange [0:$RELOAD_SECS]; set yrange [0:*]; set grid ytics; set key top right"
            echo "set ylabel 'per s'"
            for v in "${RELOAD_VARIANTS[@]}"; do
                [[ -s "$OUT/reload-$v.dat" ]] || continue
                echo "unset arrow"
                while read -r at _; do
                    echo "set arrow from $at, graph 0 to $at, graph 1 nohead dt 2 lc rgb 'gray40'"
                done <"$OUT/reload-$v.marks"
                echo "set title \"${RELOAD_LABELS[$v]//\`/}\""
                echo "plot '$OUT/reload-$v.dat' using 1:2 with steps lw 1.5 lc rgb '#1f77b4' title '2xx/s', \\"
                echo "     '' using 1:(\$3+\$4) with impulses lw 2 lc rgb '#d62728' title 'failed/s (non-2xx + unanswered)'"
            done
            echo "unset multiplot"
        } >"$gp"
        gnuplot "$gp" || die "gnuplot failed on the reload timeline"
    fi
    if [[ -s "$OUT/spawn.dat" ]]; then
        awk '{ print $1 }' "$OUT/spawn.dat" | sort -n | awk '{ print NR, $1 }' >"$DIR/spawn-ours.dat"
        awk '{ print $2 }' "$OUT/spawn.dat" | sort -n | awk '{ print NR, $1 }' >"$DIR/spawn-plain.dat"
        local n
        n="$(wc -l <"$OUT/spawn.dat")"
        cat >"$gp" <<EOF
set terminal pngcairo size 800,400 font 'sans,9'
set output '$OUT/spawn-latency.png'
set title 'Spawn to first 200 on the container address ($n spawns each): share of spawns answered by'
set xlabel 'ms after the command'
set ylabel 'share of spawns'
set yrange [0:1.05]; set grid
set key bottom right
plot '$DIR/spawn-ours.dat' using 2:(\$1/$n) with steps lw 2 lc rgb '#1f77b4' title 'uwsgi-docker run', \\
     '$DIR/spawn-plain.dat' using 2:(\$1/$n) with steps lw 2 lc rgb '#ff7f0e' title 'docker run -d'
EOF
        gnuplot "$gp" || die "gnuplot failed on the spawn distribution"
    fi
    plot_storm "$gp"
    cat <<EOF

Plots: $(ls "$OUT"/*.png 2>/dev/null | xargs -r -n1 basename | tr '\n' ' ')(in $OUT).
EOF
}
