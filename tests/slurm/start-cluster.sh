#!/usr/bin/env bash
# A single-node SLURM cluster on localhost for tests/test_slurm.py: munged, MariaDB, slurmdbd
# (sacct, which Snakemake's SLURM executor plugin reads job states from), slurmctld and slurmd,
# with a `cpu` and a `gpu` partition. The gpu partition is this CPU node with one GPU declared as
# a generic resource (no device behind it): the test checks where jobs are routed and what they
# ask for, not CUDA. Needs root and Debian's packages (installed here when missing).
#
#   bash tests/slurm/start-cluster.sh          # install if needed, (re)start, wait until idle
#   bash tests/slurm/start-cluster.sh stop     # stop every daemon it started
#
# The node declares 16 CPUs and 16 GB whatever the machine has (SlurmdParameters=
# config_overrides), so that the profile's real requests (8 threads for behaviour training)
# are accepted on a 2-core test machine. Account `macaw` exists for the tests.
set -euo pipefail

CLUSTER=macawtest
ACCOUNT=macaw
NODE=$(hostname -s)
CONF=/etc/slurm
LOG=/var/log/slurm
log() { echo "start-cluster: $*" >&2; }

stop() {
    for daemon in slurmd slurmctld slurmdbd; do pkill -x "$daemon" 2>/dev/null || true; done
    for _ in $(seq 50); do pgrep -x slurmd || pgrep -x slurmctld || pgrep -x slurmdbd || break; sleep 0.2; done >/dev/null
}

if [[ ${1:-} == stop ]]; then
    stop
    exit 0
fi
[[ $(id -u) == 0 ]] || { log "run as root"; exit 1; }

start=$(date +%s)
need=()
for cmd in slurmctld slurmd slurmdbd munged mariadbd sacct; do
    command -v "$cmd" >/dev/null || need+=("$cmd")
done
if (( ${#need[@]} )); then
    log "installing slurm-wlm slurmdbd munge mariadb-server (missing: ${need[*]})"
    apt-get update -q >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
        slurm-wlm slurmdbd slurm-client munge mariadb-server >/dev/null
fi
installed=$(date +%s)

stop
mkdir -p "$CONF" "$LOG" /var/spool/slurmctld /var/spool/slurmd /run/munge /run/mysqld

# munge: one key, the daemon as its own user.
[[ -s /etc/munge/munge.key ]] || mungekey --create --keyfile=/etc/munge/munge.key
chown -R munge:munge /etc/munge /run/munge /var/lib/munge /var/log/munge 2>/dev/null || true
chmod 0700 /etc/munge && chmod 0400 /etc/munge/munge.key
if ! pgrep -x munged >/dev/null; then runuser -u munge -- munged; fi

# MariaDB: the accounting database and its user.
chown mysql:mysql /run/mysqld
if ! pgrep -x mariadbd >/dev/null; then
    [[ -d /var/lib/mysql/mysql ]] || mariadb-install-db --user=mysql >/dev/null
    (mariadbd-safe --user=mysql >/dev/null 2>&1 &)
    for _ in $(seq 100); do mariadb -e 'select 1' >/dev/null 2>&1 && break; sleep 0.2; done
fi
mariadb -e "CREATE DATABASE IF NOT EXISTS slurm_acct_db;
            CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY 'slurm';
            GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost'; FLUSH PRIVILEGES;"

cat > "$CONF/slurmdbd.conf" <<CONFIG
AuthType=auth/munge
DbdHost=localhost
SlurmUser=root
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageUser=slurm
StoragePass=slurm
StorageLoc=slurm_acct_db
LogFile=$LOG/slurmdbd.log
PidFile=/run/slurmdbd.pid
CONFIG
chmod 0600 "$CONF/slurmdbd.conf"

cat > "$CONF/slurm.conf" <<CONFIG
ClusterName=$CLUSTER
SlurmctldHost=$NODE
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldLogFile=$LOG/slurmctld.log
SlurmdLogFile=$LOG/slurmd.log
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
ReturnToService=2
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SlurmdParameters=config_overrides
GresTypes=gpu
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStorageTRES=gres/gpu
AccountingStorageEnforce=associations
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
AccountingStoreFlags=job_comment
MinJobAge=3600
NodeName=$NODE CPUs=16 RealMemory=16000 Gres=gpu:1 State=UNKNOWN
PartitionName=cpu Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
PartitionName=gpu Nodes=$NODE MaxTime=INFINITE State=UP
CONFIG
echo "NodeName=$NODE Name=gpu File=/dev/null" > "$CONF/gres.conf"
cat > "$CONF/cgroup.conf" <<CONFIG
CgroupPlugin=cgroup/v1
CgroupAutomount=no
CONFIG

slurmdbd
for _ in $(seq 100); do sacctmgr -n list cluster >/dev/null 2>&1 && break; sleep 0.2; done
sacctmgr -i add cluster "$CLUSTER" >/dev/null 2>&1 || true
sacctmgr -i add account "$ACCOUNT" cluster="$CLUSTER" >/dev/null 2>&1 || true
sacctmgr -i add user root account="$ACCOUNT" cluster="$CLUSTER" >/dev/null 2>&1 || true

slurmctld
slurmd
for _ in $(seq 150); do
    state=$(sinfo -h -n "$NODE" -o %t 2>/dev/null | head -1)
    [[ $state == idle ]] && break
    [[ $state == down* || $state == drain* ]] && scontrol update nodename="$NODE" state=resume || true
    sleep 0.2
done
[[ $(sinfo -h -n "$NODE" -o %t | head -1) == idle ]] || {
    log "node $NODE is not idle:"; sinfo >&2; tail -n 20 "$LOG/slurmctld.log" "$LOG/slurmd.log" >&2
    exit 1
}
log "cluster $CLUSTER up: partitions $(sinfo -h -o %P | tr '\n' ' ')(install $((installed - start)) s, start $(( $(date +%s) - installed )) s)"
