// A 5x7 bitmap font for the labels of plots: digits, lower-case letters and a little punctuation.

/// Glyphs of 5x7 pixels in a 6x8 cell. Upper-case letters are drawn as lower-case; a character the font lacks is
/// drawn as a hollow box.
enum BitmapFont {
    static let width = 5, height = 7, advance = 6

    /// Each glyph: the character, then its 7 rows top to bottom as 2 hex digits each, bit 4 the leftmost pixel.
    private static let table = """
        0 0E11131519110E 1 040C040404040E 2 0E11010204081F 3 1F02040201110E 4 02060A121F0202 5 1F101E0101110E
        6 0608101E11110E 7 1F010204080808 8 0E11110E11110E 9 0E11110F01020C
        a 00000E010F110F b 1010161911111E c 00000E1010110E d 01010D1311110F e 00000E111F100E f 0609081C080808
        g 000F11110F010E h 10101619111111 i 04000C0404040E j 0200060202120C k 10101214181412 l 0C04040404040E
        m 00001A15151111 n 00001619111111 o 00000E1111110E p 00001E111E1010 q 00000D130F0101 r 00001619101010
        s 00000E100E011E t 08081C08080906 u 0000111111130D v 00001111110A04 w 0000111115150A x 0000110A040A11
        y 000011110F010E z 00001F0204081F
        . 00000000000C0C - 0000001F000000 + 0004041F040400 _ 0000000000001F : 000C0C000C0C00 % 18190204081303
        ( 02040808080402 ) 08040202020408 / 00010204081000 = 00001F001F0000
        """

    /// The rows of every glyph in the table.
    static let glyphs: [Character: [UInt8]] = {
        var glyphs: [Character: [UInt8]] = [" ": Array(repeating: 0, count: height)]
        let tokens = table.split(whereSeparator: \.isWhitespace).map(Array.init)
        for entry in stride(from: 0, to: tokens.count - 1, by: 2) {
            let hex = tokens[entry + 1]
            precondition(tokens[entry].count == 1 && hex.count == 2 * height, "bad glyph entry \(String(tokens[entry]))")
            glyphs[tokens[entry][0]] = (0 ..< height).map { UInt8(String(hex[2 * $0 ... 2 * $0 + 1]), radix: 16)! }
        }
        return glyphs
    }()

    static let missing: [UInt8] = [0x1F, 0x11, 0x11, 0x11, 0x11, 0x11, 0x1F]

    /// The rows of `character`'s glyph.
    static func rows(_ character: Character) -> [UInt8] {
        glyphs[character] ?? glyphs[Character(character.lowercased())] ?? missing
    }

    /// The width in font pixels of `text` (one cell per character, less the last cell's spacing).
    static func textWidth(_ text: String) -> Int { max(text.count * advance - 1, 0) }
}
