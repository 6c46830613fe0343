#!/usr/bin/env bash
# Crash trials: kill the daemon with SIGKILL at a random moment of a commit,
# then prove that nothing was lost.
#
#   scripts/crash-trials.sh [TRIALS] [ISOFUSE]      (default 10, .build/release/isofuse)
#
# Each trial mounts a copy of a two-session image made by xorriso, stages a
# seeded mix of changes (new files, small to 24 MB, an overwritten and a
# removed medium file, a renamed directory, a symlink, a hard link), records
# the merged view, touches .isofuse/commit and kills the daemon: either when
# the commit reaches a phase picked at random (preparing, writing, checking,
# activating), or after a random delay. Then:
#   1. every session on the image passes `xorriso -check_md5_r`;
#   2. the image mounts again and shows exactly the recorded view (each staged
#      byte is in the new session or still staged);
#   3. the next commit works, and the newest session, extracted by xorriso,
#      equals the recorded view.
# Prints one line per trial and a summary; exit 1 if any trial failed.
# TRIAL_SEED=N repeats one trial's choices.
set -euo pipefail
trials=${1:-10}
isofuse=$(realpath "${2:-.build/release/isofuse}")
work=$(mktemp -d /tmp/isofuse-crash.XXXXXX)
phases=(preparing writing checking activating)
failures=0
landed=0

cleanup() {
    # Not `mountpoint -q`: a mount whose daemon was killed fails its stat (ENOTCONN).
    for m in "$work"/*/mnt; do fusermount3 -uz "$m" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT

# The medium: two sessions with MD5s, a hard link and a symlink.
base=$work/base.iso
mkdir -p "$work/src1/docs" "$work/src1/photos" "$work/src2"
head -c 3000000 /dev/urandom >"$work/src1/photos/a.jpg"
head -c 5000 /dev/urandom >"$work/src1/docs/readme.txt"
ln "$work/src1/photos/a.jpg" "$work/src1/photos/a-link.jpg"
ln -s ../docs/readme.txt "$work/src1/photos/readme"
head -c 2000000 /dev/urandom >"$work/src2/b.bin"
xorriso -md5 on -hardlinks on -outdev "stdio:$base" -map "$work/src1" / -commit >/dev/null 2>&1
xorriso -md5 on -hardlinks on -dev "stdio:$base" -map "$work/src2" /more -commit >/dev/null 2>&1

# The view a mount shows: type, mode, size, link target, content hash; no times
# (a commit rounds them to what ISO 9660 records).
view() {
    (cd "$1" && find . -path ./.isofuse -prune -o -printf '%y\t%m\t%s\t%l\t%p\n' | sort -t$'\t' -k5 |
        while IFS=$'\t' read -r type mode size target path; do
            hash=-
            if [ "$type" = f ]; then hash=$(sha1sum <"$path" | cut -c1-40); fi
            if [ "$type" = d ]; then size=-; fi   # directory sizes are the filesystem's business
            printf '%s %s %s %s %s %s\n' "$type" "$mode" "$size" "$target" "$hash" "$path"
        done)
}

status_field() {   # status_field MNT KEY: a string field of the commit's status
    local json
    json=$(getfattr --only-values -n user.isofuse.status "$1/.isofuse/status" 2>/dev/null) || return 0
    [[ $json =~ \"commit\":\{[^}]*\"$2\":\"([a-z]*)\" ]] && echo "${BASH_REMATCH[1]}"
    return 0
}

check_sessions() {   # every session of IMG passes -check_md5_r
    local img=$1 n
    n=$(xorriso -indev "stdio:$img" -toc 2>&1 | grep -c '^ISO session')
    for s in $(seq 1 "$n"); do
        xorriso -abort_on NEVER -indev "stdio:$img" -load session "$s" -check_md5_r sorry / -- >"$work/check.log" 2>&1 ||
            { echo "session $s of $n fails -check_md5_r: $(grep -m1 -i 'mismatch\|FAILURE\|SORRY' "$work/check.log")"; return 1; }
    done
}

trial() {
    local t=$1 seed=$2 dir=$work/t$1 img mnt stage how sessions_after
    RANDOM=$seed
    mkdir -p "$dir/mnt" "$dir/extract"
    img=$dir/disc.iso mnt=$dir/mnt stage=$dir/staging
    cp "$base" "$img"
    "$isofuse" mount "$img" "$mnt" --staging "$stage" --capacity 1G
    # Staged changes.
    mkdir -p "$mnt/new/deep"
    for i in $(seq 1 $((RANDOM % 12 + 4))); do
        head -c $((RANDOM * (RANDOM % 800 + 1) % 24000000 + 1)) /dev/urandom >"$mnt/new/f$i"
    done
    for i in $(seq 1 40); do echo "small $i $seed" >"$mnt/new/deep/s$i"; done
    head -c 1000000 /dev/urandom >"$mnt/docs/readme.txt"
    rm "$mnt/more/b.bin"
    mv "$mnt/photos" "$mnt/pictures"
    ln -s new/deep "$mnt/shortcut"
    ln "$mnt/new/f1" "$mnt/new/f1-again"
    chmod 0640 "$mnt/new/f2"
    view "$mnt" >"$dir/expected"
    local pid
    pid=$(python3 -c "import json,sys; print(json.load(sys.stdin)['pid'])" <<<"$("$isofuse" status "$mnt" --json)")

    # The kill.
    touch "$mnt/.isofuse/commit"
    if ((RANDOM % 3)); then
        local want=${phases[RANDOM % 4]} deadline=$((SECONDS + 60)) wait_for
        how="at $want"
        # Activating is too short to be seen: aim at the end of checking instead.
        wait_for=${want/activating/checking}
        while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do
            local phase state
            phase=$(status_field "$mnt" phase) state=$(status_field "$mnt" state)
            if [ "$phase" = "$wait_for" ] || [ "$state" = succeeded ] || [ "$state" = failed ]; then break; fi
        done
        if [ "$want" = activating ]; then sleep "$(printf '0.%03d' $((RANDOM % 300)))"; fi
        [ "$(status_field "$mnt" state)" = running ] || how="$how (missed: $(status_field "$mnt" state))"
    else
        local delay
        delay=$(printf '0.%03d' $((RANDOM % 1000)))
        how="after ${delay}s"
        sleep "$delay"
    fi
    kill -9 "$pid" 2>/dev/null || true
    while kill -0 "$pid" 2>/dev/null; do sleep 0.01; done
    fusermount3 -uz "$mnt"

    # 1. Earlier sessions intact (and a landed one complete).
    check_sessions "$img" || return 1
    sessions_after=$(xorriso -indev "stdio:$img" -toc 2>&1 | grep -c '^ISO session')
    if [ "$sessions_after" = 3 ]; then how="$how, session landed"; else how="$how, still staged"; fi

    # 2. The same view after remounting.
    "$isofuse" mount "$img" "$mnt" --staging "$stage" --capacity 1G
    view "$mnt" >"$dir/after-crash"
    diff -q "$dir/expected" "$dir/after-crash" >/dev/null ||
        { echo "the view after the crash differs:"; diff "$dir/expected" "$dir/after-crash" | head -5; return 1; }

    # 3. The next commit, and what xorriso finds in the newest session.
    "$isofuse" commit "$mnt" >/dev/null
    view "$mnt" >"$dir/after-commit"
    diff -q "$dir/expected" "$dir/after-commit" >/dev/null ||
        { echo "the view after the next commit differs"; return 1; }
    "$isofuse" unmount "$mnt"
    check_sessions "$img" || return 1
    xorriso -osirrox on -indev "stdio:$img" -extract / "$dir/extract" >/dev/null 2>&1
    view "$dir/extract" >"$dir/extracted"
    diff -q "$dir/expected" "$dir/extracted" >/dev/null ||
        { echo "the newest session differs from the staged view:"; diff "$dir/expected" "$dir/extracted" | head -5; return 1; }
    echo "$how"
}

for t in $(seq 1 "$trials"); do
    seed=${TRIAL_SEED:-$((t * 7919 + $$ % 1000))}
    if out=$(trial "$t" "$seed" 2>&1); then
        printf 'trial %3d (seed %d): ok, killed %s\n' "$t" "$seed" "$(tail -1 <<<"$out")"
        grep -q 'session landed' <<<"$out" && landed=$((landed + 1))
        rm -rf "$work/t$t"
    else
        failures=$((failures + 1))
        printf 'trial %3d (seed %d): FAILED\n%s\n' "$t" "$seed" "$out"
        fusermount3 -uz "$work/t$t/mnt" 2>/dev/null || true
        rm -rf "$work/t$t"
    fi
done
echo "$trials trials: $((trials - failures)) survived, $failures failed ($landed sessions had landed before the kill)"
[ "$failures" = 0 ]
