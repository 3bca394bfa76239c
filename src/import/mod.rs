//! `quire import`: a blog from elsewhere into quire's content/. `html`
//! turns HTML bodies into markdown.

pub mod html;
