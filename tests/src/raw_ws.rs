//! A minimal WebSocket client (RFC 6455: the upgrade handshake, masked text frames out,
//! text frames in) over one TCP stream that is read only when the test asks for a message.
//!
//! jsonrpsee's client reads its socket in a background task whatever its caller does, so it
//! cannot play a subscriber that stops reading; this one can, and it sees every message the
//! node sends, subscription errors included.

use eyre::{bail, eyre};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpSocket, TcpStream};

/// The `Sec-WebSocket-Key` of every handshake (any 16 bytes in base64 will do; this is the
/// RFC's example).
const HANDSHAKE_KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
/// Client frames must be masked; any key will do.
const MASK: [u8; 4] = [0x6c, 0x6f, 0x63, 0x6b];
/// Largest message accepted (the node's largest response is 16 MiB).
const MAX_MESSAGE_BYTES: u64 = 64 * 1024 * 1024;

const OP_CONTINUATION: u8 = 0x0;
const OP_TEXT: u8 = 0x1;
const OP_BINARY: u8 = 0x2;
const OP_CLOSE: u8 = 0x8;
const OP_PING: u8 = 0x9;
const OP_PONG: u8 = 0xa;

/// One WebSocket connection, read only in [`RawWs::next_text`].
pub struct RawWs {
    stream: BufReader<TcpStream>,
}

impl RawWs {
    /// Connects to `url` (`ws://host:port`) with a TCP receive buffer of about
    /// `recv_buffer` bytes: the smaller it is, the sooner a reader that stops reading leaves
    /// the node with nowhere to put what it sends.
    pub async fn connect(url: &str, recv_buffer: u32) -> eyre::Result<RawWs> {
        let host = url
            .strip_prefix("ws://")
            .ok_or_else(|| eyre!("{url} is not a ws:// address"))?
            .trim_end_matches('/');
        let addr = tokio::net::lookup_host(host)
            .await?
            .next()
            .ok_or_else(|| eyre!("{host} does not resolve"))?;
        let socket = if addr.is_ipv4() {
            TcpSocket::new_v4()?
        } else {
            TcpSocket::new_v6()?
        };
        socket.set_recv_buffer_size(recv_buffer)?;
        let mut tcp = socket.connect(addr).await?;
        tcp.write_all(
            format!(
                "GET / HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                 Sec-WebSocket-Key: {HANDSHAKE_KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n"
            )
            .as_bytes(),
        )
        .await?;
        let mut stream = BufReader::new(tcp);
        let mut status = String::new();
        stream.read_line(&mut status).await?;
        if !status.starts_with("HTTP/1.1 101") {
            bail!("{url} refused the WebSocket upgrade: {}", status.trim_end());
        }
        loop {
            let mut header = String::new();
            if stream.read_line(&mut header).await? == 0 {
                bail!("{url} closed the connection during the handshake");
            }
            if header == "\r\n" {
                break;
            }
        }
        Ok(RawWs { stream })
    }

    /// Sends one text message.
    pub async fn send_text(&mut self, text: &str) -> eyre::Result<()> {
        self.send_frame(OP_TEXT, text.as_bytes()).await
    }

    async fn send_frame(&mut self, opcode: u8, payload: &[u8]) -> eyre::Result<()> {
        const MASKED: u8 = 0x80;
        let mut frame = vec![0x80 | opcode];
        match payload.len() {
            n if n < 126 => frame.push(MASKED | n as u8),
            n => match u16::try_from(n) {
                Ok(n) => {
                    frame.push(MASKED | 126);
                    frame.extend_from_slice(&n.to_be_bytes());
                }
                Err(_) => {
                    frame.push(MASKED | 127);
                    frame.extend_from_slice(&(n as u64).to_be_bytes());
                }
            },
        }
        frame.extend_from_slice(&MASK);
        frame.extend(payload.iter().zip(MASK.iter().cycle()).map(|(b, m)| b ^ m));
        self.stream.get_mut().write_all(&frame).await?;
        Ok(())
    }

    /// The next text message the server sent (pings are answered; a close is an error).
    pub async fn next_text(&mut self) -> eyre::Result<String> {
        let mut message = Vec::new();
        loop {
            let mut head = [0u8; 2];
            self.stream.read_exact(&mut head).await?;
            let fin = head[0] & 0x80 != 0;
            let opcode = head[0] & 0x0f;
            let masked = head[1] & 0x80 != 0;
            let len = match head[1] & 0x7f {
                126 => u64::from(self.stream.read_u16().await?),
                127 => self.stream.read_u64().await?,
                n => u64::from(n),
            };
            if len + message.len() as u64 > MAX_MESSAGE_BYTES {
                bail!("a message of more than {MAX_MESSAGE_BYTES} bytes");
            }
            let mut mask = [0u8; 4];
            if masked {
                self.stream.read_exact(&mut mask).await?;
            }
            let mut payload = vec![0u8; usize::try_from(len)?];
            self.stream.read_exact(&mut payload).await?;
            if masked {
                for (b, m) in payload.iter_mut().zip(mask.iter().cycle()) {
                    *b ^= m;
                }
            }
            match opcode {
                OP_TEXT | OP_BINARY | OP_CONTINUATION => {
                    message.extend_from_slice(&payload);
                    if fin {
                        return Ok(String::from_utf8(message)?);
                    }
                }
                OP_PING => self.send_frame(OP_PONG, &payload).await?,
                OP_PONG => {}
                OP_CLOSE => bail!("the server closed the WebSocket connection"),
                other => bail!("unknown WebSocket opcode {other:#x}"),
            }
        }
    }
}
