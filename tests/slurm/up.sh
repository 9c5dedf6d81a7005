#!/usr/bin/env bash
# Brings up a one-node Slurm cluster on loopback, every file under $BASE, for the sweep's Slurm
# test and for trying `forgetlab sweep run --executor slurm` on a workstation. Needs root
# (Debian/Ubuntu: installs slurmctld slurmd slurm-client munge with apt when missing).
#
#   BASE=/tmp/forgetlab-slurm ACCOUNTING=0 tests/slurm/up.sh
#   export SLURM_CONF=/tmp/forgetlab-slurm/etc/slurm.conf
#   tests/slurm/down.sh
#
# BASE must stay short: munge's Unix socket lives under it (socket paths are limited to 107
# bytes). ACCOUNTING=1 also installs and starts MariaDB + slurmdbd so `sacct` works.
# Ports 6817/6818 (and 6819/3307 with accounting) are fixed: one cluster per machine.
# Recipe and timings: shared/reference/slurm-local.md.
set -euo pipefail
BASE=${BASE:-/tmp/forgetlab-slurm}
ACCOUNTING=${ACCOUNTING:-0}
HOST=$(hostname -s)

if [ -f "$BASE/run/slurmctld.pid" ] && kill -0 "$(cat "$BASE/run/slurmctld.pid")" 2>/dev/null; then
  echo "slurm already up under $BASE"
  echo "export SLURM_CONF=$BASE/etc/slurm.conf"
  exit 0
fi

need=()
for cmd in slurmctld slurmd sbatch munged; do command -v "$cmd" >/dev/null || need+=("$cmd"); done
if [ "$ACCOUNTING" = 1 ]; then
  for cmd in slurmdbd mariadbd; do command -v "$cmd" >/dev/null || need+=("$cmd"); done
fi
if [ ${#need[@]} -gt 0 ]; then
  echo "installing Slurm (missing: ${need[*]})"
  pkgs="slurmctld slurmd slurm-client munge"
  [ "$ACCOUNTING" = 1 ] && pkgs="$pkgs slurmdbd mariadb-server"
  apt-get update -qq
  # shellcheck disable=SC2086
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $pkgs >/dev/null
fi

mkdir -p "$BASE"/{etc,state,spool,run,log,jobs,munge/etc,munge/run,munge/log,munge/lib}
chmod 755 "$BASE" "$BASE/munge" "$BASE/munge/run"     # munged: socket dir must be world-executable
chmod 700 "$BASE/munge/etc" "$BASE/munge/log" "$BASE/munge/lib"
SOCK=$BASE/munge/run/munge.socket.2

[ -f "$BASE/munge/etc/munge.key" ] || mungekey -c -k "$BASE/munge/etc/munge.key"
/usr/sbin/munged --key-file="$BASE/munge/etc/munge.key" --socket="$SOCK" \
  --pid-file="$BASE/munge/run/munged.pid" --log-file="$BASE/munge/log/munged.log" \
  --seed-file="$BASE/munge/lib/munged.seed"
munge -S "$SOCK" -n | unmunge -S "$SOCK" >/dev/null

NODE_LINE=$(slurmd -C | head -1)
CPUS=$(sed -n 's/.* CPUs=\([0-9]*\).*/\1/p' <<<"$NODE_LINE")
MEM=$(sed -n 's/.* RealMemory=\([0-9]*\).*/\1/p' <<<"$NODE_LINE")
MEM=$(( MEM * 95 / 100 ))

ACCT_LINES="AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none"
if [ "$ACCOUNTING" = 1 ]; then
  ACCT_LINES="AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
AccountingStoragePort=6819
AccountingStoragePass=$SOCK
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=5"
fi

cat > "$BASE/etc/slurm.conf" <<CONF
ClusterName=forgetlab
SlurmctldHost=$HOST(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$SOCK
SlurmctldPort=6817
SlurmdPort=6818
StateSaveLocation=$BASE/state
SlurmdSpoolDir=$BASE/spool/slurmd-%n
SlurmctldPidFile=$BASE/run/slurmctld.pid
SlurmdPidFile=$BASE/run/slurmd-%n.pid
SlurmctldLogFile=$BASE/log/slurmctld.log
SlurmdLogFile=$BASE/log/slurmd-%n.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
$ACCT_LINES
JobCompType=jobcomp/filetxt
JobCompLoc=$BASE/log/jobcomp.txt
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
MpiDefault=none
ReturnToService=2
MinJobAge=300
NodeName=$HOST NodeAddr=127.0.0.1 CPUs=$CPUS RealMemory=$MEM State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF
export SLURM_CONF=$BASE/etc/slurm.conf

if [ "$ACCOUNTING" = 1 ]; then
  mkdir -p "$BASE/mysql"
  [ -d "$BASE/mysql/data" ] || mariadb-install-db --no-defaults --datadir="$BASE/mysql/data" \
      --user=root --auth-root-authentication-method=normal >"$BASE/log/mariadb-install.log" 2>&1
  nohup mariadbd --no-defaults --datadir="$BASE/mysql/data" --user=root --bind-address=127.0.0.1 \
      --port=3307 --socket="$BASE/mysql/mysqld.sock" --pid-file="$BASE/run/mariadbd.pid" \
      --log-error="$BASE/log/mariadbd.err" --innodb-buffer-pool-size=64M >/dev/null 2>&1 &
  for _ in $(seq 60); do [ -S "$BASE/mysql/mysqld.sock" ] && break; sleep 0.5; done
  mariadb --no-defaults -S "$BASE/mysql/mysqld.sock" -uroot -e "
    CREATE DATABASE IF NOT EXISTS slurm_acct_db;
    CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY 'slurm';
    GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1'; FLUSH PRIVILEGES;"
  cat > "$BASE/etc/slurmdbd.conf" <<CONF
AuthType=auth/munge
AuthInfo=socket=$SOCK
DbdHost=localhost
DbdAddr=127.0.0.1
DbdPort=6819
SlurmUser=root
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=3307
StorageUser=slurm
StoragePass=slurm
StorageLoc=slurm_acct_db
LogFile=$BASE/log/slurmdbd.log
PidFile=$BASE/run/slurmdbd.pid
CONF
  chmod 600 "$BASE/etc/slurmdbd.conf"
  /usr/sbin/slurmdbd
  for _ in $(seq 60); do sacctmgr -n list cluster >/dev/null 2>&1 && break; sleep 0.5; done
fi

/usr/sbin/slurmctld
/usr/sbin/slurmd
for _ in $(seq 60); do sinfo -h -o %t 2>/dev/null | grep -q idle && break; sleep 0.5; done
if ! sinfo -h -o %t | grep -q idle; then
  echo "slurm did not become idle; logs under $BASE/log" >&2
  sinfo >&2 || true
  exit 1
fi
sinfo
echo "export SLURM_CONF=$BASE/etc/slurm.conf"
