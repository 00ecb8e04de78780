//! What an HTML part shows and hides: its visible text, the link targets it names (`href`,
//! `src`, `action`, `background`), each anchor's text beside its target, and how much text it
//! hides from the reader (`display:none`, tiny fonts, text in the background colour).
//!
//! Tokenized by html5gum (WHATWG), so character references (`&#104;ttp`, `&amp;`) are decoded
//! exactly where a browser decodes them; there is no tree builder, so nesting is tracked here
//! with a bounded stack of open elements.

use html5gum::{DefaultEmitter, StartTag, Token, Tokenizer};

/// Open elements tracked at once; deeper nesting is treated as its innermost tracked parent.
/// Hostile HTML can open millions of tags; real mail rarely nests beyond 40.
const MAX_STACK: usize = 256;
/// Link targets kept per part: far more than any real message has.
const MAX_TARGETS: usize = 1000;
/// Anchors whose text is kept per part.
const MAX_ANCHORS: usize = 500;
/// Characters of one anchor's text kept (a link text that shows a URL is short).
const MAX_ANCHOR_TEXT: usize = 256;

/// Text colour and background as RGB.
type Rgb = (u8, u8, u8);

const WHITE: Rgb = (255, 255, 255);
const BLACK: Rgb = (0, 0, 0);

/// A link and the text it shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Anchor {
    pub href: String,
    pub text: String,
}

/// One HTML part, analysed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HtmlDoc {
    /// The text a reader sees, words separated where blocks break.
    pub text: String,
    /// Every `href`, `src`, `action` and `background` value, in order.
    pub targets: Vec<String>,
    pub anchors: Vec<Anchor>,
    /// Letters and digits hidden by `display:none`, `visibility:hidden`, `opacity:0`,
    /// a zero height with `overflow:hidden`, or the `hidden` attribute.
    pub hidden_chars: usize,
    /// Letters and digits in a font of 2px (or pt) or less, or in the background's colour.
    pub invisible_chars: usize,
    /// Letters and digits the reader sees.
    pub visible_chars: usize,
    pub images: usize,
    /// `<input type=password>` fields: a page that asks for a password.
    pub password_fields: usize,
}

/// What an open element passes to its children.
#[derive(Debug, Clone, Copy)]
struct Style {
    hidden: bool,
    tiny: bool,
    color: Rgb,
    background: Rgb,
    /// Text here goes nowhere (head, style, script, title).
    ignored: bool,
}

impl Default for Style {
    fn default() -> Self {
        Style { hidden: false, tiny: false, color: BLACK, background: WHITE, ignored: false }
    }
}

struct Open {
    name: Vec<u8>,
    style: Style,
    /// Index into `anchors` while inside `<a href>`.
    anchor: Option<usize>,
}

/// Analyses one HTML part, reading at most `max_text` bytes of visible text into `text`.
pub fn analyse(html: &str, max_text: usize) -> HtmlDoc {
    let mut emitter = DefaultEmitter::default();
    // Switch to raw text inside <style>, <script>, <title>, <textarea> as a browser does, so
    // CSS and script are never read as markup.
    emitter.naively_switch_states(true);
    let mut walker = Walker { doc: HtmlDoc::default(), stack: Vec::new(), max_text };
    for token in Tokenizer::new_with_emitter(html, emitter).flatten() {
        match token {
            Token::StartTag(tag) => walker.start(&tag),
            Token::EndTag(tag) => walker.end(&tag.name),
            Token::String(s) => walker.text(&String::from_utf8_lossy(&s)),
            _ => {}
        }
    }
    walker.doc
}

struct Walker {
    doc: HtmlDoc,
    stack: Vec<Open>,
    max_text: usize,
}

impl Walker {
    fn current(&self) -> Style {
        self.stack.last().map(|o| o.style).unwrap_or_default()
    }

    fn anchor(&self) -> Option<usize> {
        self.stack.iter().rev().find_map(|o| o.anchor)
    }

    fn start(&mut self, tag: &StartTag<()>) {
        let name = tag.name.to_ascii_lowercase();
        let attr = |key: &str| tag.attributes.get(key.as_bytes()).map(|v| String::from_utf8_lossy(v).into_owned());
        for key in ["href", "src", "action", "background"] {
            if let Some(value) = attr(key)
                && self.doc.targets.len() < MAX_TARGETS
            {
                self.doc.targets.push(value);
            }
        }
        if name == b"img" {
            self.doc.images += 1;
        }
        if name == b"input" && attr("type").is_some_and(|t| t.trim().eq_ignore_ascii_case("password")) {
            self.doc.password_fields += 1;
        }
        if is_block(&name) {
            self.push_text(" ");
        }
        if is_void(&name) || tag.self_closing || self.stack.len() >= MAX_STACK {
            return;
        }
        let style = element_style(self.current(), &name, &attr);
        let mut anchor = None;
        if name == b"a"
            && let Some(href) = attr("href")
            && self.doc.anchors.len() < MAX_ANCHORS
        {
            anchor = Some(self.doc.anchors.len());
            self.doc.anchors.push(Anchor { href, text: String::new() });
        }
        self.stack.push(Open { name, style, anchor });
    }

    fn end(&mut self, name: &[u8]) {
        if is_block(name) {
            self.push_text(" ");
        }
        // Close the innermost open element of that name and everything opened inside it (an
        // end tag with no open match is ignored, as a browser mostly does).
        if let Some(at) = self.stack.iter().rposition(|o| o.name.eq_ignore_ascii_case(name)) {
            self.stack.truncate(at);
        }
    }

    fn text(&mut self, text: &str) {
        let style = self.current();
        if style.ignored {
            return;
        }
        let chars = text.chars().filter(|c| c.is_alphanumeric()).count();
        if style.hidden {
            self.doc.hidden_chars += chars;
            return;
        }
        if style.tiny || low_contrast(style.color, style.background) {
            self.doc.invisible_chars += chars;
            return;
        }
        self.doc.visible_chars += chars;
        if let Some(i) = self.anchor() {
            let t = &mut self.doc.anchors[i].text;
            if t.len() < MAX_ANCHOR_TEXT {
                t.push_str(crate::message::truncate(text, MAX_ANCHOR_TEXT - t.len()));
            }
        }
        self.push_text(text);
    }

    fn push_text(&mut self, text: &str) {
        let room = self.max_text.saturating_sub(self.doc.text.len());
        self.doc.text.push_str(crate::message::truncate(text, room));
    }
}

/// Elements that never have content, so never appear on the stack.
fn is_void(name: &[u8]) -> bool {
    matches!(
        name,
        b"area" | b"base" | b"br" | b"col" | b"embed" | b"hr" | b"img" | b"input" | b"link" | b"meta" | b"source" | b"track" | b"wbr"
    )
}

/// Elements that separate words.
fn is_block(name: &[u8]) -> bool {
    matches!(
        name,
        b"p" | b"div" | b"br" | b"tr" | b"td" | b"th" | b"li" | b"table" | b"h1" | b"h2" | b"h3" | b"h4" | b"h5" | b"h6" | b"blockquote" | b"hr" | b"center"
    )
}

/// The style an element gives its content, from its parent's, its attributes and its `style`.
fn element_style(parent: Style, name: &[u8], attr: &dyn Fn(&str) -> Option<String>) -> Style {
    let mut s = parent;
    if matches!(name, b"head" | b"style" | b"script" | b"title" | b"template" | b"noscript") {
        s.ignored = true;
    }
    if attr("hidden").is_some() {
        s.hidden = true;
    }
    if let Some(c) = attr("bgcolor").as_deref().and_then(parse_color) {
        s.background = c;
    }
    if name == b"font"
        && let Some(c) = attr("color").as_deref().and_then(parse_color)
    {
        s.color = c;
    }
    if let Some(css) = attr("style") {
        apply_css(&mut s, &css);
    }
    s
}

/// Applies the inline declarations that hide text.
fn apply_css(s: &mut Style, css: &str) {
    let mut zero_height = false;
    let mut overflow_hidden = false;
    for decl in css.split(';') {
        let Some((prop, value)) = decl.split_once(':') else { continue };
        let prop = prop.trim().to_ascii_lowercase();
        let value = value.trim().trim_end_matches("!important").trim().to_ascii_lowercase();
        match prop.as_str() {
            "display" if value == "none" => s.hidden = true,
            "visibility" if value == "hidden" || value == "collapse" => s.hidden = true,
            "opacity" if value.parse::<f32>().is_ok_and(|o| o < 0.1) => s.hidden = true,
            "max-height" | "height" if length(&value).is_some_and(|px| px < 1.0) => zero_height = true,
            "overflow" if value == "hidden" => overflow_hidden = true,
            "font-size" if length(&value).is_some_and(|px| px <= 2.0) => s.tiny = true,
            "color" => s.color = parse_color(&value).unwrap_or(s.color),
            "background-color" | "background" => {
                if let Some(c) = value.split_whitespace().find_map(parse_color) {
                    s.background = c;
                }
            }
            _ => {}
        }
    }
    if zero_height && overflow_hidden {
        s.hidden = true;
    }
}

/// A CSS length in px (pt and unitless read as px; em and % are relative and ignored).
fn length(value: &str) -> Option<f32> {
    let number = value.trim_end_matches("px").trim_end_matches("pt");
    if number.len() != value.len() || value.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return number.trim().parse().ok();
    }
    None
}

/// `#rgb`, `#rrggbb`, `rgb(r,g,b)` and the few colour names hidden text uses.
fn parse_color(value: &str) -> Option<Rgb> {
    let v = value.trim().to_ascii_lowercase();
    if let Some(hex) = v.strip_prefix('#') {
        let digit = |i: usize, n: usize| u8::from_str_radix(hex.get(i..i + n)?, 16).ok();
        return match hex.len() {
            3 => Some((digit(0, 1)? * 17, digit(1, 1)? * 17, digit(2, 1)? * 17)),
            6 => Some((digit(0, 2)?, digit(2, 2)?, digit(4, 2)?)),
            _ => None,
        };
    }
    if let Some(args) = v.strip_prefix("rgb(").or_else(|| v.strip_prefix("rgba(")) {
        let mut it = args.trim_end_matches(')').split(',').map(|p| p.trim().parse::<u8>().ok());
        return Some((it.next()??, it.next()??, it.next()??));
    }
    match v.as_str() {
        "white" => Some(WHITE),
        "black" => Some(BLACK),
        "snow" | "ivory" | "whitesmoke" => Some((250, 250, 250)),
        _ => None,
    }
}

/// Text a reader cannot tell from its background: both within a few steps of each other.
fn low_contrast(a: Rgb, b: Rgb) -> bool {
    let d = |x: u8, y: u8| x.abs_diff(y) as u32;
    d(a.0, b.0) + d(a.1, b.1) + d(a.2, b.2) <= 24
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_targets_and_anchors() {
        let doc = analyse(
            r#"<html><head><title>T</title><style>p{color:red}</style></head><body>
            <p>Hello&nbsp;<b>world</b></p><a href="&#104;ttp://x.test/a">click <i>here</i></a>
            <img src="http://img.test/p.gif"><form action="https://form.test/post"></form>
            <script>var s = "<a href='http://no.test'>";</script></body></html>"#,
            10_000,
        );
        assert!(doc.text.contains("Hello\u{a0}world"), "{:?}", doc.text);
        assert!(doc.text.contains("click here"));
        assert!(!doc.text.contains("color") && !doc.text.contains('T'), "{:?}", doc.text);
        assert_eq!(doc.targets, ["http://x.test/a", "http://img.test/p.gif", "https://form.test/post"]);
        assert_eq!(doc.anchors, [Anchor { href: "http://x.test/a".into(), text: "click here".into() }]);
        assert_eq!(doc.images, 1);
        assert_eq!(doc.password_fields, 0);
        let form = analyse("<form><input name=u><INPUT TYPE=\"Password\" name=p></form>", 100);
        assert_eq!(form.password_fields, 1);
    }

    #[test]
    fn hidden_and_invisible_text() {
        let cases: &[(&str, usize, usize)] = &[
            (r#"<div style="display:none">abc</div>"#, 3, 0),
            (r#"<div style="DISPLAY: NONE !important">abc</div>"#, 3, 0),
            (r#"<span style="visibility:hidden">abcd</span>"#, 4, 0),
            (r#"<div hidden>ab</div>"#, 2, 0),
            (r#"<div style="max-height:0;overflow:hidden">ab<b>cd</b></div>"#, 4, 0),
            (r#"<div style="max-height:0">ab</div>"#, 0, 0),
            (r#"<div style="opacity:0">ab</div>"#, 2, 0),
            (r#"<span style="font-size:1px">abc</span>"#, 0, 3),
            (r#"<span style="font-size:0">abc</span>"#, 0, 3),
            (r#"<span style="font-size:12px">abc</span>"#, 0, 0),
            (r##"<font color="#ffffff">abc</font>"##, 0, 3),
            (r#"<p style="color:#FEFEFE">abc</p>"#, 0, 3),
            (r##"<table bgcolor="#000000"><tr><td><font color="white">abc</font></td></tr></table>"##, 0, 0),
            (r#"<div style="background-color:#333;color:#333">ab</div>"#, 0, 2),
            (r#"<div style="color:rgb(255, 255, 255)">ab</div>"#, 0, 2),
            // The hidden element ends; what follows is visible again.
            (r#"<div style="display:none"><p>ab</div>cd"#, 2, 0),
        ];
        for (html, hidden, invisible) in cases {
            let doc = analyse(html, 1000);
            assert_eq!((doc.hidden_chars, doc.invisible_chars), (*hidden, *invisible), "{html}");
        }
    }

    #[test]
    fn bounded_on_hostile_input() {
        let deep = "<div>".repeat(100_000) + "x" + &"</div>".repeat(100_000);
        let doc = analyse(&deep, 100);
        assert_eq!(doc.visible_chars, 1);
        let long = "word ".repeat(10_000);
        assert_eq!(analyse(&long, 64).text.len(), 64);
        let many = "<a href=\"http://x.test/\">x</a>".repeat(5000);
        let doc = analyse(&many, 100);
        assert_eq!((doc.targets.len(), doc.anchors.len()), (MAX_TARGETS, MAX_ANCHORS));
    }

    #[test]
    fn colors_and_lengths() {
        assert_eq!(parse_color("#FFF"), Some(WHITE));
        assert_eq!(parse_color("#0a0B0c"), Some((10, 11, 12)));
        assert_eq!(parse_color("rgba(1,2,3,0.5)"), Some((1, 2, 3)));
        assert_eq!(parse_color("#12"), None);
        assert_eq!(parse_color("rgb(300,0,0)"), None);
        assert_eq!(length("1px"), Some(1.0));
        assert_eq!(length("2pt"), Some(2.0));
        assert_eq!(length("0"), Some(0.0));
        assert_eq!(length("0.5em"), None);
        assert_eq!(length("small"), None);
    }
}
