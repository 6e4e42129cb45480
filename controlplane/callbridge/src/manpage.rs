//! `callbridge man`: the man page callbridge(1), generated from the clap definition
//! (clap_mangen for the title, name, synopsis, description and global options; the
//! subcommands with their options on the same page, then files, environment and signals).

use std::io::{self, Write};

/// Escapes text for roff (backslashes, and a leading `.` or `'`).
fn roff(text: &str) -> String {
    let t = text.replace('\\', "\\e").replace('-', "\\-");
    if t.starts_with('.') || t.starts_with('\'') {
        format!("\\&{t}")
    } else {
        t
    }
}

/// Writes the page for `cmd` (the whole CLI) to `out`.
pub(crate) fn render(cmd: clap::Command, out: &mut dyn Write) -> io::Result<()> {
    let man = clap_mangen::Man::new(cmd.clone()).date("");
    man.render_title(out)?;
    man.render_name_section(out)?;
    man.render_synopsis_section(out)?;
    man.render_description_section(out)?;
    man.render_options_section(out)?;
    writeln!(out, ".SH COMMANDS")?;
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        let mut sub = sub
            .clone()
            .bin_name(format!("callbridge {}", sub.get_name()));
        let usage = sub.render_usage().to_string();
        let usage = usage.trim_start_matches("Usage:").trim();
        writeln!(out, ".TP\n\\fB{}\\fR", roff(usage))?;
        if let Some(about) = sub.get_long_about().or_else(|| sub.get_about()) {
            writeln!(out, "{}", roff(&about.to_string()))?;
        }
        for arg in sub.get_arguments().filter(|a| !a.is_hide_set()) {
            let id = arg.get_id().as_str();
            if id == "help" || id == "version" {
                continue;
            }
            let value = arg
                .get_value_names()
                .and_then(|v| v.first())
                .map_or_else(|| id.to_uppercase(), ToString::to_string);
            let name = match arg.get_long() {
                Some(long) => format!("\\fB\\-\\-{}\\fR \\fI{}\\fR", roff(long), roff(&value)),
                None => format!("\\fI{}\\fR", roff(&value)),
            };
            let help = arg.get_help().map(ToString::to_string).unwrap_or_default();
            writeln!(out, ".RS\n.TP\n{name}\n{}\n.RE", roff(&help))?;
        }
    }
    out.write_all(
        br#".SH FILES
.TP
/etc/callbridge/callbridge.toml
The configuration (TOML; every key is described in the README's configuration reference).
Check it with \fBcallbridge check\-config\fR.
.TP
/var/lib/callbridge/callbridge.db
The store (SQLite, with \-wal and \-shm files beside it): call requests, calls, records.
.TP
/lib/systemd/system/callbridge.service
The systemd unit; \fB/usr/share/doc/callbridge/examples/dpdk.conf\fR is the drop\-in a DPDK host adds.
.SH ENVIRONMENT
.TP
CALLBRIDGE_LOG
A tracing filter (e.g. \fBinfo,sip=debug\fR); overrides \fB[log] level\fR.
.SH SIGNALS
.TP
SIGTERM
Drain: no new call requests; live calls run to their end (at most \fBdrain.max_seconds\fR), then exit.
.TP
SIGHUP
Reload agents, businesses, prompts and limits from the configuration file; a bad file is refused and the old configuration kept.
.SH EXIT STATUS
0 on success; 1 when \fBserve\fR fails or \fBpreflight\fR finds a FAIL; 2 for a bad configuration (\fIFILE\fR:\fILINE\fR: \fIKEY\fR: \fIreason\fR on stderr).
.SH SEE ALSO
\fBsystemctl\fR(1), \fBjournalctl\fR(1), \fBsystemd.exec\fR(5)
"#,
    )?;
    Ok(())
}
