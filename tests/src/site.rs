//! [`StaticSite`]: a tiny HTTP server on loopback serving fixed pages, e.g. a third-party web
//! page that embeds the widget from another origin (used with [`crate::browser`]).

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// One page of a [`StaticSite`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SitePage {
    /// The path it is served at (the query string is ignored when matching), e.g. `/`.
    pub path: String,
    /// Its `Content-Type`, e.g. `text/html; charset=utf-8`.
    pub content_type: String,
    /// The body.
    pub body: String,
}

impl SitePage {
    /// An HTML page at `path`.
    #[must_use]
    pub fn html(path: &str, body: &str) -> Self {
        Self {
            path: path.into(),
            content_type: "text/html; charset=utf-8".into(),
            body: body.into(),
        }
    }
}

/// A tiny HTTP/1.1 server on 127.0.0.1 serving fixed [`SitePage`]s (anything else is 404):
/// a third-party web site with an origin of its own, for pages that embed callbridge's
/// widget. One thread accepts; each connection gets a short-lived thread (a browser may open
/// a connection and send nothing), answers one request and closes. Stopped and joined when
/// dropped.
#[derive(Debug)]
pub struct StaticSite {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    served: Arc<Mutex<Vec<String>>>,
    thread: Option<JoinHandle<()>>,
}

impl StaticSite {
    /// Binds 127.0.0.1:`port` and serves `pages`.
    ///
    /// # Panics
    /// If the port cannot be bound.
    #[must_use]
    pub fn start(port: u16, pages: Vec<SitePage>) -> Self {
        let addr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, port));
        let listener =
            TcpListener::bind(addr).unwrap_or_else(|e| panic!("cannot bind {addr}: {e}"));
        let stop = Arc::new(AtomicBool::new(false));
        let served = Arc::new(Mutex::new(Vec::new()));
        let pages = Arc::new(pages);
        let thread = {
            let (stop, served) = (stop.clone(), served.clone());
            std::thread::spawn(move || {
                for conn in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(conn) = conn else { continue };
                    let (pages, served) = (pages.clone(), served.clone());
                    std::thread::spawn(move || serve_one(conn, &pages, &served));
                }
            })
        };
        Self {
            addr,
            stop,
            served,
            thread: Some(thread),
        }
    }

    /// The address it listens on.
    #[must_use]
    pub const fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT` (what browsers send as `Origin`).
    #[must_use]
    pub fn origin(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The absolute URL of `path`.
    #[must_use]
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.origin())
    }

    /// The requests answered so far, as `METHOD target -> status` lines.
    #[must_use]
    pub fn served(&self) -> Vec<String> {
        self.served
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

impl Drop for StaticSite {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accepting thread so that it sees the flag.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Reads one request's head from `conn` and answers it from `pages`.
fn serve_one(mut conn: TcpStream, pages: &[SitePage], served: &Mutex<Vec<String>>) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(10)));
    let _ = conn.set_write_timeout(Some(Duration::from_secs(10)));
    let mut head = Vec::with_capacity(1024);
    let mut buf = [0u8; 2048];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 64 * 1024 {
        match conn.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    let text = String::from_utf8_lossy(&head);
    let mut parts = text.lines().next().unwrap_or_default().split(' ');
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let path = target.split(['?', '#']).next().unwrap_or("");
    let page = pages.iter().find(|p| p.path == path);
    let (status, content_type, body) = match (method, page) {
        ("GET" | "HEAD", Some(p)) => ("200 OK", p.content_type.as_str(), p.body.as_str()),
        ("GET" | "HEAD", None) => ("404 Not Found", "text/plain; charset=utf-8", "not found\n"),
        _ => (
            "405 Method Not Allowed",
            "text/plain; charset=utf-8",
            "method not allowed\n",
        ),
    };
    served
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .push(format!("{method} {target} -> {status}"));
    let mut response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
         Cache-Control: no-store\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    if method != "HEAD" {
        response.extend_from_slice(body.as_bytes());
    }
    let _ = conn.write_all(&response);
    let _ = conn.flush();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn static_site_serves_its_pages_and_404_otherwise() {
        let port = crate::PortBlock::reserve(2);
        let site = StaticSite::start(
            port.port(0),
            vec![SitePage::html(
                "/shop.html",
                "<!doctype html><title>t</title>",
            )],
        );
        let r = crate::http::request(site.addr(), "GET", "/shop.html?sku=1", None).unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
        assert_eq!(r.body, "<!doctype html><title>t</title>");
        let r = crate::http::request(site.addr(), "GET", "/favicon.ico", None).unwrap();
        assert_eq!(r.status, 404);
        let r = crate::http::request(site.addr(), "POST", "/shop.html", Some("{}")).unwrap();
        assert_eq!(r.status, 405);
        assert_eq!(
            site.served(),
            vec![
                "GET /shop.html?sku=1 -> 200 OK",
                "GET /favicon.ico -> 404 Not Found",
                "POST /shop.html -> 405 Method Not Allowed",
            ]
        );
        assert_eq!(
            site.url("/a"),
            format!("http://127.0.0.1:{}/a", port.port(0))
        );
    }
}
