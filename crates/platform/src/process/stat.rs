//! Reading `/proc/<pid>/stat`, the only view of processes that are not our children.

use std::fs;

/// The fields of `/proc/<pid>/stat` the platform needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct ProcStat {
    /// Field 3: `R`, `S`, `D`, `Z` (zombie), `X` (dead)…
    pub(super) state: char,
    /// Field 5: the process group.
    pub(super) process_group: i32,
    /// Field 22: start time in clock ticks since boot.
    pub(super) start_time: u64,
}

impl ProcStat {
    /// A zombie or dead process has exited even though its pid still answers `kill(pid, 0)`.
    pub(super) fn is_dead(&self) -> bool {
        matches!(self.state, 'Z' | 'X' | 'x')
    }
}

/// The process's stat, or `None` when there is no such process (any read failure means it
/// vanished: the file is world-readable while the process exists).
pub(super) fn read(pid: u32) -> Option<ProcStat> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse(&text)
}

fn parse(text: &str) -> Option<ProcStat> {
    // Field 2 is the command name in parentheses and may itself contain spaces and ')'.
    let after_name = &text[text.rfind(')')? + 1..];
    let mut fields = after_name.split_ascii_whitespace();
    let state = fields.next()?.chars().next()?;
    let _parent = fields.next()?;
    let process_group = fields.next()?.parse().ok()?;
    // Fields 6 to 21 sit between the process group and the start time.
    let start_time = fields.nth(16)?.parse().ok()?;
    Some(ProcStat {
        state,
        process_group,
        start_time,
    })
}

/// Whether any live (non-zombie) process belongs to the process group.
pub(super) fn group_has_live_member(group: i32) -> bool {
    let Ok(entries) = fs::read_dir("/proc") else {
        return false;
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(read)
        .any(|stat| stat.process_group == group && !stat.is_dead())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_state_group_and_start_time_even_with_odd_command_names() {
        let line = "4242 (odd) name (x)) S 1 4242 4242 0 -1 4194560 150 0 0 0 1 2 0 0 20 0 1 0 987654 4096 100 18446744073709551615";

        assert_eq!(
            parse(line),
            Some(ProcStat {
                state: 'S',
                process_group: 4242,
                start_time: 987_654
            })
        );
    }

    #[test]
    fn truncated_lines_are_not_parsed() {
        assert_eq!(parse("4242 (sh) Z 1 4242 4242"), None);
        assert_eq!(parse("garbage"), None);
    }

    #[test]
    fn reads_this_process() {
        let stat = read(std::process::id()).unwrap();

        assert!(!stat.is_dead());
        assert_eq!(stat.process_group, nix::unistd::getpgrp().as_raw());
        assert!(stat.start_time > 0);
        assert_eq!(read(std::process::id()).unwrap().start_time, stat.start_time);
    }
}
