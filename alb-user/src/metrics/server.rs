//! The HTTP side of the metrics: hyper (HTTP/1) on the agent's tokio
//! runtime. `GET /metrics` asks the event loop for a [`Snapshot`] and
//! encodes it in the connection's own task; any other path is 404.
//! Connections are few and short (a scraper every few seconds): at most
//! [`MAX_CONNECTIONS`] at once, each closed after [`CONNECTION_TIMEOUT`].

use std::{convert::Infallible, net::SocketAddr, sync::Arc, time::Duration};

use anyhow::{Context as _, Result};
use http_body_util::Full;
use hyper::{
    Method, Request, Response, StatusCode,
    body::{Bytes, Incoming},
    header,
    server::conn::http1,
    service::service_fn,
};
use hyper_util::rt::{TokioIo, TokioTimer};
use log::{debug, info, warn};
use tokio::{
    net::TcpListener,
    sync::{Semaphore, mpsc, oneshot},
    task::JoinHandle,
};

use super::{
    Snapshot,
    encode::{Format, encode},
};

/// A scrape waiting for the event loop's snapshot.
pub type Scrape = oneshot::Sender<Result<Snapshot>>;

/// Connections served at once; more are closed at once.
const MAX_CONNECTIONS: usize = 16;
/// The longest a connection stays open (requests included).
const CONNECTION_TIMEOUT: Duration = Duration::from_secs(10);
/// The longest a scrape waits for the event loop.
const SNAPSHOT_TIMEOUT: Duration = Duration::from_secs(5);

/// Binds the metrics address (before anything changes, so a taken port
/// refuses the start).
pub fn bind(addr: SocketAddr) -> Result<std::net::TcpListener> {
    let listener = std::net::TcpListener::bind(addr)
        .with_context(|| format!("cannot listen for metrics on {addr}"))?;
    listener.set_nonblocking(true)?;
    Ok(listener)
}

/// The metrics server: a task that ends when this is dropped.
pub struct Server(JoinHandle<()>);

impl Server {
    /// Serves `listener`, asking `scrapes` for each scrape's snapshot.
    pub fn start(listener: std::net::TcpListener, scrapes: mpsc::Sender<Scrape>) -> Result<Self> {
        let listener = TcpListener::from_std(listener)?;
        info!("metrics at http://{}/metrics", listener.local_addr()?);
        Ok(Self(tokio::spawn(accept(listener, scrapes))))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.0.abort();
    }
}

async fn accept(listener: TcpListener, scrapes: mpsc::Sender<Scrape>) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(error) => {
                // Out of descriptors, say: wait rather than spin.
                warn!("metrics: {error}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
            debug!("metrics: {MAX_CONNECTIONS} connections open; closing a new one");
            continue;
        };
        let scrapes = scrapes.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| respond(request, scrapes.clone()));
            let connection = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(CONNECTION_TIMEOUT)
                .serve_connection(TokioIo::new(stream), service);
            match tokio::time::timeout(CONNECTION_TIMEOUT, connection).await {
                Ok(Ok(())) => {}
                Ok(Err(error)) => debug!("metrics connection: {error}"),
                Err(_) => debug!("metrics connection closed after {CONNECTION_TIMEOUT:?}"),
            }
            drop(slot);
        });
    }
}

async fn respond(
    request: Request<Incoming>,
    scrapes: mpsc::Sender<Scrape>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    if request.uri().path() != "/metrics" {
        return Ok(plain(StatusCode::NOT_FOUND, "not found; metrics are at /metrics\n"));
    }
    if request.method() != Method::GET {
        let mut response = plain(StatusCode::METHOD_NOT_ALLOWED, "only GET\n");
        response.headers_mut().insert(header::ALLOW, header::HeaderValue::from_static("GET"));
        return Ok(response);
    }
    let accept = request.headers().get(header::ACCEPT).and_then(|v| v.to_str().ok());
    let format = Format::from_accept(accept);
    let (reply, snapshot) = oneshot::channel();
    if scrapes.send(reply).await.is_err() {
        return Ok(plain(StatusCode::SERVICE_UNAVAILABLE, "the agent is stopping\n"));
    }
    let snapshot = match tokio::time::timeout(SNAPSHOT_TIMEOUT, snapshot).await {
        Ok(Ok(Ok(snapshot))) => snapshot,
        Ok(Ok(Err(error))) => {
            warn!("metrics: {error:#}");
            return Ok(plain(StatusCode::INTERNAL_SERVER_ERROR, &format!("{error:#}\n")));
        }
        Ok(Err(_)) => return Ok(plain(StatusCode::SERVICE_UNAVAILABLE, "the agent is stopping\n")),
        Err(_) => return Ok(plain(StatusCode::SERVICE_UNAVAILABLE, "the agent is busy\n")),
    };
    let mut response = Response::new(Full::new(Bytes::from(encode(&snapshot, format))));
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, header::HeaderValue::from_static(format.content_type()));
    Ok(response)
}

fn plain(status: StatusCode, text: &str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(text.to_owned())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}
