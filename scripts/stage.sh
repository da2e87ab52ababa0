# Sourced by the scripts: `stage WHAT` prints one line per stage with the time since the first
# script of this command started (EXSIM_T0 is inherited by the scripts it calls), so that a
# first-time user sees what is happening and how long each part takes.
: "${EXSIM_T0:=$(date +%s)}"
export EXSIM_T0
stage() {
    local s=$(( $(date +%s) - EXSIM_T0 ))
    printf '== [%dm%02ds] %s\n' $((s / 60)) $((s % 60)) "$*" >&2
}
# ninja's progress line: step N of M and the seconds since the build started.
export NINJA_STATUS="${NINJA_STATUS:-[%f/%t %es] }"
