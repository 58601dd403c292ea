//! What the client knows about the terminal it prints to.

use std::io::IsTerminal;

/// Columns assumed for a terminal that does not say (a serial console).
const FALLBACK_COLUMNS: usize = 80;

/// The width of the terminal on stdout, or `None` when stdout is a pipe or
/// a file: tables are cut to fit a screen, never what a script reads.
///
/// `$COLUMNS` wins when set to a number, as for other tools that read it.
pub fn width() -> Option<usize> {
    let stdout = std::io::stdout();
    if !stdout.is_terminal() {
        return None;
    }
    if let Some(n) = std::env::var("COLUMNS").ok().and_then(|c| c.parse().ok()) {
        return Some(n);
    }
    match rustix::termios::tcgetwinsize(&stdout) {
        Ok(size) if size.ws_col > 0 => Some(usize::from(size.ws_col)),
        _ => Some(FALLBACK_COLUMNS),
    }
}
