// A 5x7 bitmap font with two rows of descenders for the labels of plots: digits, lower-case letters and a little
// punctuation.
import ClassicCNNEngine

/// Glyphs of 5x9 pixels: 7 rows down to the baseline and 2 below it, where g, j, p, q and y hang (without them a 5x7
/// "p" reads as "P" and "g" as "9"). Upper-case letters are drawn as lower-case; a character the font lacks is drawn
/// as a hollow box.
package enum BitmapFont {
    package static let width = 5, height = 9, advance = 6
    /// The rows down to the baseline: where SVG text, which has real descenders, puts its baseline.
    package static let baseline = 7

    /// Each glyph: the character, then its 9 rows top to bottom as 2 hex digits each, bit 4 the leftmost pixel.
    private static let table = """
        0 0E11131519110E0000 1 040C040404040E0000 2 0E11010204081F0000 3 1F02040201110E0000 4 02060A121F02020000 5 1F101E0101110E0000
        6 0608101E11110E0000 7 1F0102040808080000 8 0E11110E11110E0000 9 0E11110F01020C0000 a 00000E010F110F0000 b 1010161911111E0000
        c 00000E1010110E0000 d 01010D1311110F0000 e 00000E111F100E0000 f 0609081C0808080000 g 00000F1111110F010E h 101016191111110000
        i 04000C0404040E0000 j 02000602020202120C k 101012141814120000 l 0C04040404040E0000 m 00001A151511110000 n 000016191111110000
        o 00000E1111110E0000 p 00001E1111111E1010 q 00000F1111110F0101 r 000016191010100000 s 00000E100E011E0000 t 08081C080809060000
        u 0000111111130D0000 v 00001111110A040000 w 0000111115150A0000 x 0000110A040A110000 y 0000111111110F010E z 00001F0204081F0000
        . 00000000000C0C0000 - 0000001F0000000000 + 0004041F0404000000 _ 0000000000001F0000 : 000C0C000C0C000000 % 181902040813030000
        ( 020408080804020000 ) 080402020204080000 / 000102040810000000 = 00001F001F00000000
        """

    /// The rows of every glyph in the table.
    package static let glyphs: [Character: [UInt8]] = {
        var glyphs: [Character: [UInt8]] = [" ": Array(repeating: 0, count: height)]
        let tokens = table.split(whereSeparator: \.isWhitespace).map(Array.init)
        for entry in stride(from: 0, to: tokens.count - 1, by: 2) {
            let hex = tokens[entry + 1]
            precondition(tokens[entry].count == 1 && hex.count == 2 * height, "bad glyph entry \(String(tokens[entry]))")
            glyphs[tokens[entry][0]] = (0 ..< height).map { UInt8(String(hex[2 * $0 ... 2 * $0 + 1]), radix: 16)! }
        }
        return glyphs
    }()

    package static let missing: [UInt8] = [0x1F, 0x11, 0x11, 0x11, 0x11, 0x11, 0x1F, 0, 0]

    /// The rows of `character`'s glyph.
    package static func rows(_ character: Character) -> [UInt8] {
        glyphs[character] ?? glyphs[Character(character.lowercased())] ?? missing
    }

    /// The width in font pixels of `text` (one cell per character, less the last cell's spacing).
    package static func textWidth(_ text: String) -> Int { max(text.count * advance - 1, 0) }
}
