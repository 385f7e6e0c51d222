//! A `multipart/form-data` body (RFC 7578) built in memory: the upload format of the
//! transcription endpoint.

/// A form being built.
#[derive(Debug)]
pub struct Form {
    boundary: String,
    body: Vec<u8>,
}

impl Default for Form {
    fn default() -> Self {
        Self::new()
    }
}

impl Form {
    /// An empty form with a random boundary (which no field value will contain).
    pub fn new() -> Self {
        Form {
            boundary: format!(
                "openclaw-voice-{:016x}{:016x}",
                fastrand::u64(..),
                fastrand::u64(..)
            ),
            body: Vec::new(),
        }
    }

    fn head(&mut self, disposition: &str) {
        self.body.extend_from_slice(b"--");
        self.body.extend_from_slice(self.boundary.as_bytes());
        self.body
            .extend_from_slice(b"\r\nContent-Disposition: form-data; ");
        self.body.extend_from_slice(disposition.as_bytes());
        self.body.extend_from_slice(b"\r\n");
    }

    /// Adds a text field. Names are the API's fixed field names; they need no escaping.
    pub fn text(&mut self, name: &str, value: &str) {
        self.head(&format!("name=\"{name}\""));
        self.body.extend_from_slice(b"\r\n");
        self.body.extend_from_slice(value.as_bytes());
        self.body.extend_from_slice(b"\r\n");
    }

    /// Adds a file field.
    pub fn file(&mut self, name: &str, file_name: &str, content_type: &str, data: &[u8]) {
        self.head(&format!("name=\"{name}\"; filename=\"{file_name}\""));
        self.body.extend_from_slice(b"Content-Type: ");
        self.body.extend_from_slice(content_type.as_bytes());
        self.body.extend_from_slice(b"\r\n\r\n");
        self.body.extend_from_slice(data);
        self.body.extend_from_slice(b"\r\n");
    }

    /// The Content-Type header value and the body.
    pub fn finish(mut self) -> (String, Vec<u8>) {
        self.body.extend_from_slice(b"--");
        self.body.extend_from_slice(self.boundary.as_bytes());
        self.body.extend_from_slice(b"--\r\n");
        (
            format!("multipart/form-data; boundary={}", self.boundary),
            self.body,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_and_files_are_framed_by_the_boundary() {
        let mut form = Form::new();
        form.text("model", "whisper-1");
        form.file("file", "a.wav", "audio/wav", b"RIFF\r\n");
        let boundary = form.boundary.clone();
        let (content_type, body) = form.finish();
        assert_eq!(
            content_type,
            format!("multipart/form-data; boundary={boundary}")
        );
        let expected = format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\nwhisper-1\r\n\
             --{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.wav\"\r\n\
             Content-Type: audio/wav\r\n\r\nRIFF\r\n\r\n--{boundary}--\r\n"
        );
        assert_eq!(String::from_utf8(body).unwrap(), expected);
        assert_ne!(Form::new().boundary, Form::new().boundary);
    }
}
