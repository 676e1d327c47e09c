//! Keys: the terminal in single-key mode, the keys read from it, and the names of keys
//! pressed in the video window, all as [`Command`]s.

use std::io::Read;
use std::sync::mpsc;

use super::Command;

/// The terminal in single-key mode (no line editing, no echo) while the player runs, so
/// keys act at once; restored on drop. Does nothing when stdin is not a terminal.
pub struct RawTerminal {
    saved: Option<libc::termios>,
}

impl RawTerminal {
    pub fn enable() -> RawTerminal {
        // SAFETY: isatty/tcgetattr/tcsetattr on fd 0 with a valid termios struct.
        unsafe {
            if libc::isatty(0) != 1 {
                return RawTerminal { saved: None };
            }
            let mut term: libc::termios = std::mem::zeroed();
            if libc::tcgetattr(0, &mut term) != 0 {
                return RawTerminal { saved: None };
            }
            let saved = term;
            term.c_lflag &= !(libc::ICANON | libc::ECHO);
            term.c_cc[libc::VMIN] = 1;
            term.c_cc[libc::VTIME] = 0;
            if libc::tcsetattr(0, libc::TCSANOW, &term) != 0 {
                return RawTerminal { saved: None };
            }
            RawTerminal { saved: Some(saved) }
        }
    }
}

impl Drop for RawTerminal {
    fn drop(&mut self) {
        if let Some(saved) = &self.saved {
            // SAFETY: restores the settings read in `enable`.
            unsafe {
                libc::tcsetattr(0, libc::TCSANOW, saved);
            }
        }
    }
}

/// Keys from the terminal (or any stdin): space/p = pause, left/right arrows (or , and .)
/// = seek -/+5 s, s = overlay, q/Esc = quit.
pub fn read_keys(commands: mpsc::Sender<Command>) {
    let mut stdin = std::io::stdin();
    let mut byte = [0u8; 1];
    let mut escape: Vec<u8> = Vec::new();
    while let Ok(1) = stdin.read(&mut byte) {
        let command = if !escape.is_empty() {
            escape.push(byte[0]);
            match escape.as_slice() {
                [0x1b, b'['] => continue,
                [0x1b, b'[', b'C'] => Some(Command::Seek(5)),
                [0x1b, b'[', b'D'] => Some(Command::Seek(-5)),
                _ => None,
            }
        } else {
            match byte[0] {
                0x1b => {
                    escape.push(0x1b);
                    continue;
                }
                b' ' | b'p' => Some(Command::TogglePause),
                b'.' => Some(Command::Seek(5)),
                b',' => Some(Command::Seek(-5)),
                b's' => Some(Command::ToggleOverlay),
                b'q' => Some(Command::Quit),
                _ => None,
            }
        };
        escape.clear();
        if let Some(c) = command
            && commands.send(c).is_err()
        {
            return;
        }
    }
}

/// A key pressed in the video window, by its GstNavigation name.
pub fn window_key(name: &str) -> Option<Command> {
    match name {
        "space" | "p" => Some(Command::TogglePause),
        "Left" | "comma" => Some(Command::Seek(-5)),
        "Right" | "period" => Some(Command::Seek(5)),
        "s" => Some(Command::ToggleOverlay),
        "q" | "Escape" => Some(Command::Quit),
        _ => None,
    }
}
