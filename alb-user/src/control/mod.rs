//! The control socket, `/run/alb/<master>.sock`: a Unix stream socket only
//! root can open (mode 0600 in a root-only directory), one request line and
//! one reply line per connection. `alb slave add|del`, `alb set active` and
//! `alb status` (for what only the agent knows) are its clients; the
//! requests and replies are [`protocol`]'s.

mod protocol;

use std::{
    fs,
    os::unix::fs::PermissionsExt as _,
    path::{Path, PathBuf},
};

use anyhow::{Context as _, Result, bail};
use tokio::{
    io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader},
    net::{UnixListener, UnixStream},
    sync::{mpsc, oneshot},
    time::Duration,
};

pub use self::protocol::{AgentInfo, AgentSlave, Request};
use crate::RUN_DIR;

pub fn socket_path(master: &str) -> PathBuf {
    Path::new(RUN_DIR).join(format!("{master}.sock"))
}

/// Binds the socket. The caller holds the master's lock, so a file left
/// at the path is a dead agent's and can go.
pub fn listen(master: &str) -> Result<UnixListener> {
    fs::create_dir_all(RUN_DIR).with_context(|| format!("cannot create {RUN_DIR}"))?;
    fs::set_permissions(RUN_DIR, fs::Permissions::from_mode(0o700))?;
    let path = socket_path(master);
    crate::remove_file_if_present(&path)
        .with_context(|| format!("cannot remove the old socket {}", path.display()))?;
    let listener =
        UnixListener::bind(&path).with_context(|| format!("cannot bind {}", path.display()))?;
    fs::set_permissions(&path, fs::Permissions::from_mode(0o600))?;
    Ok(listener)
}

/// A request with the way back to its connection.
pub type Pending = (Request, oneshot::Sender<Result<String>>);

/// Longest request line read.
const MAX_REQUEST: u64 = 256;

/// Serves one connection in its own task: reads one bounded line (for at
/// most a second), hands the request to the event loop and writes its
/// answer. A slow or silent client never holds up the loop, where link
/// events are handled.
pub async fn serve_connection(mut stream: UnixStream, requests: mpsc::Sender<Pending>) {
    let result = match read_request(&mut stream).await {
        Ok(request) => {
            let (reply, answer) = oneshot::channel();
            if requests.send((request, reply)).await.is_err() {
                return;
            }
            answer.await.unwrap_or_else(|_| Err(anyhow::anyhow!("the agent is stopping")))
        }
        Err(error) => Err(error),
    };
    let line = match &result {
        Ok(text) => format!("ok {text}\n"),
        Err(error) => format!("error {error:#}\n"),
    };
    if let Err(error) = stream.write_all(line.as_bytes()).await {
        log::debug!("the control client left before its answer: {error}");
    }
}

async fn read_request(stream: &mut UnixStream) -> Result<Request> {
    let mut line = String::new();
    let mut reader = BufReader::new(&mut *stream).take(MAX_REQUEST);
    tokio::time::timeout(Duration::from_secs(1), reader.read_line(&mut line))
        .await
        .map_err(|elapsed| anyhow::anyhow!("no request within 1 s ({elapsed})"))??;
    Request::parse(line.trim())
}

/// Sends a request to the agent of `master` and returns its answer.
pub async fn send(master: &str, request: &Request) -> Result<String> {
    let path = socket_path(master);
    let mut stream = match UnixStream::connect(&path).await {
        Ok(stream) => stream,
        Err(error) if error.kind() == std::io::ErrorKind::PermissionDenied => {
            bail!("only root may talk to the agent of {master} ({})", path.display())
        }
        Err(error)
            if matches!(
                error.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
            ) =>
        {
            bail!("no alb agent runs master {master} ({})", path.display())
        }
        Err(error) => {
            return Err(error).with_context(|| format!("cannot reach {}", path.display()));
        }
    };
    stream.write_all(format!("{}\n", request.to_line()).as_bytes()).await?;
    let mut line = String::new();
    BufReader::new(stream).read_line(&mut line).await?;
    match line.trim_end().split_once(' ') {
        Some(("ok", text)) => Ok(text.to_owned()),
        Some(("error", text)) => bail!("{text}"),
        _ => bail!("the agent gave no answer"),
    }
}
