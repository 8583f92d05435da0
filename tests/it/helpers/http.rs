//! Raw HTTP a test speaks to the server: POSTs as an ERP's middleware sends them,
//! `/metrics` scrapes, and whether the server closed a connection.

/// A raw HTTP/1.1 POST (what an ERP's middleware sends); returns status and body.
pub async fn http_post(port: u16, path: &str, token: Option<&str>, body: &[u8]) -> (u16, String) {
    let (status, _, body) = http_post_with_head(port, path, token, body).await;
    (status, body)
}

/// Like [`http_post`], with the answer's head (status line and headers) in between.
pub async fn http_post_with_head(
    port: u16,
    path: &str,
    token: Option<&str>,
    body: &[u8],
) -> (u16, String, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n{auth}\r\n",
        body.len()
    );
    let (mut reader, mut writer) = stream.split();
    let send = async {
        // The server may answer (413) before reading a large body: a failed write is fine.
        let _ = writer.write_all(head.as_bytes()).await;
        let _ = writer.write_all(body).await;
    };
    let mut raw = Vec::new();
    let receive = reader.read_to_end(&mut raw);
    let ((), read) = tokio::join!(send, receive);
    // A server that drops the connection unanswered (a TLS port meeting plaintext) may
    // reset it rather than close it, depending on what it had left unread: no answer.
    if let Err(e) = read {
        assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "{e}");
    }
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status: u16 = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .map(|(h, b)| (h.to_owned(), b.to_owned()))
        .unwrap_or_default();
    (status, head, body)
}

/// Whether the server closes `stream` (EOF or reset) within `bound`.
pub async fn closed_within(stream: &mut tokio::net::TcpStream, bound: std::time::Duration) -> bool {
    use tokio::io::AsyncReadExt;
    let mut buf = [0u8; 64];
    matches!(
        tokio::time::timeout(bound, stream.read(&mut buf)).await,
        Ok(Ok(0) | Err(_))
    )
}

/// `GET /metrics` with `authorization` when given: the answer's head and body.
pub async fn get_metrics(port: u16, authorization: Option<&str>) -> (String, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let auth = authorization.map_or(String::new(), |a| format!("Authorization: {a}\r\n"));
    let request =
        format!("GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n{auth}Connection: close\r\n\r\n");
    s.write_all(request.as_bytes()).await.unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).await.unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap();
    (head.to_owned(), body.to_owned())
}

/// One scrape: each sample line's series (name and labels, as written) and value.
pub async fn scrape(port: u16) -> (String, std::collections::BTreeMap<String, f64>) {
    scrape_with(port, None).await
}

/// Like [`scrape`], sending `authorization` when given.
pub async fn scrape_with(
    port: u16,
    authorization: Option<&str>,
) -> (String, std::collections::BTreeMap<String, f64>) {
    let (head, body) = get_metrics(port, authorization).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: text/plain; version=0.0.4"),
        "{head}"
    );
    let samples = body
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            Some((series.to_owned(), value.parse().ok()?))
        })
        .collect();
    (body, samples)
}
