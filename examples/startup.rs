//! Start-to-ready time: spawns a server, polls its readiness URL every 200 µs over plain TCP
//! until it answers 200, records the time from spawn, stops the server with SIGKILL and repeats.
//!
//! ```sh
//! cargo run --release --example startup -- --runs 20 --url http://127.0.0.1:18080/readyz \
//!     -- target/release/tokenmint --config target/bench/tokenmint.toml
//! ```
//!
//! Prints one line: `start_to_ready_ms min=… median=… max=… runs=…`.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use clap::Parser;

#[derive(Parser)]
#[command(about = "Measures the time from spawn to a 200 from a readiness URL")]
struct Args {
    /// How many times to start the server.
    #[arg(long, default_value_t = 20)]
    runs: usize,
    /// The readiness URL, `http://HOST:PORT/PATH` (plain HTTP/1.1 on loopback).
    #[arg(long)]
    url: String,
    /// Give up on one start after this many milliseconds.
    #[arg(long, default_value_t = 10_000)]
    timeout_ms: u64,
    /// The server command and its arguments.
    #[arg(trailing_var_arg = true, required = true)]
    command: Vec<String>,
}

/// Whether `GET path` on `addr` answers 200 now.
fn ready(addr: SocketAddr, host: &str, path: &str) -> bool {
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(50)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
    let request = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).is_ok() && head.starts_with(b"HTTP/1.1 200")
}

fn main() {
    let args = Args::parse();
    let rest = args
        .url
        .strip_prefix("http://")
        .expect("the URL must start with http://");
    let (host, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let path = if path.is_empty() { "/" } else { path };
    let addr: SocketAddr = host.parse().expect("the URL's host must be IP:PORT");

    let mut times = Vec::with_capacity(args.runs);
    for run in 0..args.runs {
        // The previous run's port must be free again before the next spawn.
        while TcpStream::connect_timeout(&addr, Duration::from_millis(50)).is_ok() {
            std::thread::sleep(Duration::from_millis(5));
        }
        let started = Instant::now();
        let mut child = Command::new(&args.command[0])
            .args(&args.command[1..])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn the server");
        let deadline = started + Duration::from_millis(args.timeout_ms);
        let mut elapsed = None;
        while Instant::now() < deadline {
            if ready(addr, host, path) {
                elapsed = Some(started.elapsed());
                break;
            }
            if let Ok(Some(status)) = child.try_wait() {
                eprintln!("run {run}: the server exited with {status} before it was ready");
                std::process::exit(1);
            }
            std::thread::sleep(Duration::from_micros(200));
        }
        let _ = child.kill();
        let _ = child.wait();
        match elapsed {
            Some(elapsed) => times.push(elapsed.as_secs_f64() * 1000.0),
            None => {
                eprintln!("run {run}: not ready within {} ms", args.timeout_ms);
                std::process::exit(1);
            }
        }
    }
    times.sort_by(f64::total_cmp);
    println!(
        "start_to_ready_ms min={:.1} median={:.1} max={:.1} runs={}",
        times[0],
        times[times.len() / 2],
        times[times.len() - 1],
        times.len()
    );
}
