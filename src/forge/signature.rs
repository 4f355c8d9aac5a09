//! Webhook signature verification: HMAC-SHA256 of the raw body, compared in constant time.
