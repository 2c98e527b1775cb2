# 005_failover (kill -9 of a follower and then of the leader under transfer
# load, a full cluster crash and restart) with dragonraft.deferred_leader_sync
# on: the leader writes its entries unsynced and syncs them in the
# background, so SIGKILL and restarts meet entries it wrote but had not
# synced; every COMMIT must still be everywhere.
use strict;
use warnings;
use FindBin;
# (loaded here, at compile time: their INIT blocks must run)
use lib $FindBin::RealBin;
use DragonCluster;
use Transfers;
use PostgreSQL::Test::Utils;
use Test::More;

$ENV{DR_TAP_CONF} = "dragonraft.deferred_leader_sync = on\n";
do "$FindBin::RealBin/005_failover.pl";
die $@ if $@;
