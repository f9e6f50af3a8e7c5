/*
 * commands.c — meterctl's command table: names, synopses and help texts.
 * The first line of each help text is the summary in `meterctl --help`.
 * Keep doc/meterctl.1 in step with this file.
 */
#include <stddef.h>

#include "cli.h"

#define TIME_NOTE \
    "Times are ISO 8601 with a zone (2026-11-26T09:30:00Z,\n" \
    "2026-11-26T17:30:00+08:00) or a date (2026-11-26, midnight UTC).\n"

const struct cli_cmd cli_commands[] = {
    { "init", NULL, cmd_init, "[--node NAME]",
      "Create the database (or check an existing one).\n"
      "\n"
      "  --node NAME   this node's name in usage records (default: the host name)\n"
      "\n"
      "Creates the file named by --db (or $METER_DB, else\n"
      "/var/lib/ffmeter/meter.db); its directory must exist.  Every other\n"
      "command refuses a database that does not exist yet.\n" },

    { "pack", "add", cmd_pack_add,
      "--type general|tsc --minutes N [--id ID] [--start TIME] [--account A]",
      "Buy a resource pack.\n"
      "\n"
      "  --type T      general or tsc: the class of usage the pack pays for\n"
      "  --minutes N   whole pack minutes\n"
      "  --id ID       the pack id (default: generated, pk-YYYYMMDD-xxxxxxxx)\n"
      "  --start TIME  purchase time = start of validity (default: now);\n"
      "                the pack ends one year later\n"
      "  --account A   the account that owns it: only its usage is paid from\n"
      "                the pack (default: the account setting)\n"
      "\n" TIME_NOTE },

    { "pack", "list", cmd_pack_list,
      "[--id SUBSTR] [--type general|tsc] [--status S] [--account A]",
      "List resource packs, in deduction order (earliest end first).\n"
      "\n"
      "  --id SUBSTR   packs whose id contains SUBSTR\n"
      "  --type T      general or tsc\n"
      "  --status S    valid, pending, exhausted, expired, frozen or refunded\n"
      "  --account A   one account's packs\n"
      "\n"
      "Lease slices (farm mode: minutes of a ledger pack reserved for this\n"
      "node, id PACK@LEASE) are listed too, with their lease; one is\n"
      "\"expired\" once its lease's local expiry has passed.\n" },

    { "pack", "show", cmd_pack_show, "ID",
      "Show one resource pack.\n" },

    { "pack", "freeze", cmd_pack_freeze, "ID",
      "Freeze a pack: it pays for nothing until unfrozen.\n" },

    { "pack", "unfreeze", cmd_pack_unfreeze, "ID",
      "Unfreeze a frozen pack.\n" },

    { "pack", "refund", cmd_pack_refund, "ID",
      "Refund a pack (within 5 days of purchase, and only if unused).\n"
      "\n"
      "Anything else is refused with the reason (exit code 4).\n" },

    { "record", NULL, cmd_record,
      "--job J --output O --class general|tsc --codec X\n"
      "       [--width W --height H] --duration-ms MS [--at TIME] [--id KEY]\n"
      "       [--account A]",
      "Record one usage by hand and deduct it, once.\n"
      "\n"
      "  --job J           the job id\n"
      "  --output O        the output (rendition) label\n"
      "  --class C         general or tsc\n"
      "  --codec X         h264, h265, av1, mvhevc, an audio codec (aac, opus,\n"
      "                    mp3, ...), copy/remux, or a codec added to the rates\n"
      "  --width W         picture size; required for video, ignored for\n"
      "  --height H        audio and remux\n"
      "  --duration-ms MS  output duration in milliseconds\n"
      "  --at TIME         when it happened (default: now)\n"
      "  --id KEY          idempotency key: 1 to 64 letters, digits, '.', '_',\n"
      "                    '-', ':' (default: the job and output are the key)\n"
      "  --account A       the account billed: only its packs pay (default:\n"
      "                    the account setting)\n"
      "\n"
      "Prints the usage id, the transcoding type, the billed, covered and\n"
      "overage minutes, and whether it is a duplicate.\n"
      "\n"
      "Once: a record is billed once per key, so a script may retry it.\n"
      "Without --id, when the job and output were already billed in full (by\n"
      "an earlier record, or by a metered output that ended \"done\"; an\n"
      "interrupted one does not count), nothing is billed, whatever the other\n"
      "values.  With --id, a second record with the KEY and the same job,\n"
      "output, class, codec, width, height and duration bills nothing; the KEY\n"
      "with other values is refused (exit 4).  --at is not compared.  Give\n"
      "each of several usages of one job and output its own --id.\n"
      "A repeat exits 0, prints the earlier record (its first usage id, the\n"
      "sums of its amounts) with duplicate = yes, and says on stderr\n"
      "\"meterctl: record: already recorded as ID; nothing billed\".\n"
      "\n" TIME_NOTE },

    { "usage", NULL, cmd_usage,
      "[--pack ID] [--type general|tsc] [--ttype NAME] [--from TIME] [--to TIME]\n"
      "       [--account A]",
      "Usage details: one row per day x account x pack x transcoding type.\n"
      "\n"
      "  --account A   one account's usage\n"
      "  --pack ID     one pack (\"-\": usage no pack covered, overage)\n"
      "  --type T      general or tsc\n"
      "  --ttype NAME  one transcoding type, e.g. Standard.H264.HD\n"
      "  --from TIME   deductions at or after TIME\n"
      "  --to TIME     deductions before TIME\n"
      "\n"
      "Columns: day, account, pack, type, transcoding type, minutes used that day,\n"
      "minutes before the day's first and after its last deduction.\n"
      "\n" TIME_NOTE },

    { "jobs", NULL, cmd_jobs,
      "[--job J] [--type general|tsc] [--ttype NAME] [--from TIME] [--to TIME]\n"
      "       [--sessions] [--account A]",
      "The raw per-output usage records (or metering sessions).\n"
      "\n"
      "  --job J       one job's records\n"
      "  --account A   one account's records (or sessions)\n"
      "  --type T      general or tsc\n"
      "  --ttype NAME  one transcoding type\n"
      "  --from TIME   recorded at or after TIME\n"
      "  --to TIME     recorded before TIME\n"
      "  --sessions    list metering sessions (running, done, interrupted)\n"
      "                instead of usage records\n"
      "\n" TIME_NOTE },

    { "settle", NULL, cmd_settle, "",
      "Daily settlement: deduct each finished day's usage.\n"
      "\n"
      "Usage recorded in daily mode (config set settlement daily) is\n"
      "deducted per day and transcoding type once the day is over, only from\n"
      "packs bought before that day ended.  Running it again does nothing.\n" },

    { "verify", NULL, cmd_verify, "",
      "Check every ledger invariant; exit 1 if any is violated.\n"
      "\n"
      "Per pack: total - remaining = sum of its deductions, no deduction\n"
      "outside its validity, while frozen or refunded; per usage: deductions\n"
      "+ overage = billed.  Each violation is printed on its own line.\n" },

    { "rates", NULL, cmd_rates, "[--class general|tsc]",
      "Show the active rate table; see also rates set and rates unset.\n"
      "\n"
      "  --class C     only one class's rows\n"
      "\n"
      "A ratio 1:N means one output minute consumes N pack minutes; \"none\"\n"
      "means the type is not deductible (all its usage is overage).  Source\n"
      "says whether a row is built in or an override kept in the database.\n"
      "\n"
      "  meterctl rates set --class C --ttype T --ratio R\n"
      "  meterctl rates unset --class C --ttype T\n" },

    { "rates", "set", cmd_rates_set,
      "--class general|tsc --ttype NAME --ratio R",
      "Override or add a rate (kept in the database).\n"
      "\n"
      "  --class C     general or tsc\n"
      "  --ttype NAME  e.g. Standard.H264.8K, Standard.VP9.HD, Audio\n"
      "  --ratio R     pack minutes per output minute: 4, 0.25, 1/4, or none\n"
      "                (not deductible)\n"
      "\n"
      "A new codec in a video type becomes classifiable by record and the\n"
      "filter.\n" },

    { "rates", "unset", cmd_rates_unset, "--class general|tsc --ttype NAME",
      "Remove a rate override (back to the built-in row, if any).\n" },

    { "config", "get", cmd_config_get, "[KEY]",
      "Show one setting (or all of them).\n"
      "\n"
      "Keys: node, node_id (read-only), rounding (exact | ceil-minute),\n"
      "settlement (realtime | daily), day_offset (e.g. +08:00), account,\n"
      "lease_accounts, lease_policy, lease_minutes.  A single key prints its\n"
      "bare value in table format.\n" },

    { "config", "set", cmd_config_set, "KEY VALUE",
      "Change a setting.\n"
      "\n"
      "  node         this node's name in new usage records\n"
      "  rounding     exact (default) or ceil-minute (each output rounded up\n"
      "               to whole minutes)\n"
      "  settlement   realtime (default) or daily\n"
      "  day_offset   the UTC offset whose midnight starts a billing day\n"
      "  account      the account of packs and usage given none (default\n"
      "               \"default\"): letters, digits, '.', '_', '-', ':'\n"
      "  lease_accounts  farm mode: ACCOUNT or ACCOUNT:CLASS, comma separated,\n"
      "               that this node leases minutes for; empty: standalone\n"
      "  lease_policy continue (default) or stop: whether an enforce=1 job\n"
      "               without minutes runs while the ledger is unreachable\n"
      "  lease_minutes  the smallest lease asked, whole minutes (default 10)\n" },

    { "reap", NULL, cmd_reap, "",
      "Finalize sessions whose process died, as interrupted.\n"
      "\n"
      "A killed ffmpeg leaves a running session with its last checkpoint;\n"
      "reap bills it once the process is gone (sessions of this host only).\n" },

    { "import-spool", NULL, cmd_import_spool, "[DIR]",
      "Import sessions spooled while the database was unavailable.\n"
      "\n"
      "DIR defaults to $METER_SPOOL, else the database path + \".spool\".\n"
      "Each imported file is removed; a session already imported is skipped.\n" },

    { "lease", "list", cmd_lease_list, "[--account A] [--open]",
      "Farm-mode leases: minutes of the ledger's packs reserved for this node.\n"
      "\n"
      "  --account A   one account's leases\n"
      "  --open        open leases only\n"
      "\n"
      "Columns: lease id, account, class, state (requested, open, released,\n"
      "expired, refused), minutes asked, granted and left in its slices,\n"
      "its deductions not yet sent to the ledger, when it was requested, its\n"
      "local expiry, when it resolved and why.\n" },

    { "sync", NULL, cmd_sync,
      "[--ledger URL] [--node NAME] [--secret-file F] [--bearer] [--cacert F]\n"
      "       [--insecure] [--batch N] [--max-bytes N] [--retries N] [--timeout S]\n"
      "       [--connect-timeout S] [--no-pull] [--no-leases] [--config F]\n"
      "       [--verbose] [--watch SECONDS]",
      "Send the outbox to the central ledger, pull this node's packs and\n"
      "keep its leases (farm mode).\n"
      "\n"
      "  --ledger URL        the ledger, e.g. https://ledger.example:8443\n"
      "  --node NAME         check that this database's node name is NAME\n"
      "  --secret-file F     the node secret's file (else $METER_SYNC_SECRET,\n"
      "                      else secret_file in the config file)\n"
      "  --bearer            send the secret as a bearer token, not an HMAC\n"
      "                      signature (the ledger must run --allow-bearer)\n"
      "  --cacert F          CA certificates to verify the ledger with\n"
      "  --insecure          do not verify the ledger's certificate (warns)\n"
      "  --batch N           records per request (default 500, at most 1000)\n"
      "  --max-bytes N       JSON bytes per request (default 1048576)\n"
      "  --retries N         retries per request (default 5): connection errors,\n"
      "                      timeouts, 5xx and 429, with exponential backoff and\n"
      "                      jitter, honouring Retry-After\n"
      "  --timeout S         seconds for one request (default 60)\n"
      "  --connect-timeout S seconds to connect (default 10)\n"
      "  --no-pull           push only\n"
      "  --no-leases         no lease requests, renewals or releases (the\n"
      "                      default leases when lease_accounts is set)\n"
      "  --config F          settings file (default $METER_SYNC_CONF, else\n"
      "                      /etc/ffmeter/sync.conf when it exists)\n"
      "  --verbose           report retries, rejected records, pack changes\n"
      "  --watch SECONDS     repeat every SECONDS until SIGTERM or SIGINT; the\n"
      "                      lease period (default 60): leases hold what the\n"
      "                      burn rate needs for two periods and are renewed\n"
      "                      two periods before they expire\n"
      "\n"
      "The config file holds key = value lines: ledger, node, secret_file,\n"
      "auth (hmac|bearer), cacert, insecure, batch, max_bytes, retries,\n"
      "timeout, connect_timeout, pull (yes|no), leases (yes|no),\n"
      "backoff_base_ms, backoff_cap_ms; options override it.\n"
      "Records leave the outbox only when the ledger acknowledged them;\n"
      "records it rejects are quarantined with the reason.  While the ledger\n"
      "is unreachable, metering and deductions go on locally.\n" },

    { "sync", "status", cmd_sync_status, "",
      "Sync health: outbox depth, oldest unsynced record, last success/error.\n"
      "\n"
      "Also the lease policy and the node's live leases (requested and open:\n"
      "id, account, class, state, granted, remaining, expires in), and the\n"
      "quarantined records with the ledger's reason (table and json; csv\n"
      "prints the figures, then the leases after a blank line).\n" },

    { "sync", "quarantine", cmd_sync_quarantine, "",
      "List records the ledger rejected, with its reason.\n" },

    { "sync", "release", cmd_sync_release, "[ID]",
      "Put a quarantined record (or all of them) back in the outbox.\n" },

    { NULL, NULL, NULL, NULL, NULL },
};
