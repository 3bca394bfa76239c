//! Headless Chromium screenshots, and a check that one is not blank.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use super::DEADLINE;
use super::peers::peer_command;

/// Where screenshots are kept for people to look at after a run.
pub fn artifacts() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/test-artifacts");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Headless Chromium takes a screenshot of `url` at `width`x`height`.
pub fn screenshot(url: &str, width: u32, height: u32, file: &Path) -> String {
    let profile = tempfile::tempdir().unwrap();
    let mut chromium = peer_command("chromium", "chromium");
    chromium
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            "--enable-logging=stderr",
            "--v=0",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(format!("--window-size={width},{height}"))
        .arg(format!("--screenshot={}", file.display()))
        .arg(url)
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let child = chromium.spawn().expect("start chromium");
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let output = match rx.recv_timeout(DEADLINE * 2) {
        Ok(output) => output.expect("chromium ran"),
        Err(_) => {
            // SAFETY: kill(2) on our own child's PID.
            unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
            panic!("chromium did not finish");
        }
    };
    let log = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(file.exists(), "no screenshot; chromium said:\n{log}");
    log
}

/// How many distinct colours a PNG has: a blank page has one or two.
pub fn distinct_colours(file: &Path) -> usize {
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(file).unwrap()));
    let mut reader = decoder.read_info().unwrap();
    let mut pixels = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut pixels).unwrap();
    let channels = info.color_type.samples();
    let mut colours: std::collections::HashSet<&[u8]> = std::collections::HashSet::new();
    for pixel in pixels[..info.buffer_size()].chunks(channels) {
        colours.insert(pixel);
        if colours.len() > 500 {
            break;
        }
    }
    colours.len()
}

/// The pixel rows of a screenshot where a card (pure white, the dashboard's
/// light `--card`) touches one side of the page `inset` pixels in but not the
/// other: a row of cards that leaves a blank column. Cards stretch to the
/// height of their row, so in a full row both sides agree on every line.
pub fn lopsided_rows(file: &Path, inset: usize) -> Vec<usize> {
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(file).unwrap()));
    let mut reader = decoder.read_info().unwrap();
    let mut pixels = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut pixels).unwrap();
    let (width, channels) = (info.width as usize, info.color_type.samples());
    let white = |row: &[u8], x: usize| row[x * channels..x * channels + 3] == [255, 255, 255];
    pixels[..info.buffer_size()]
        .chunks(info.line_size)
        .enumerate()
        .filter(|(_, row)| white(row, inset) != white(row, width - 1 - inset))
        .map(|(y, _)| y)
        .collect()
}
