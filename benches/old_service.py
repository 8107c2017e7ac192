"""The old service's way of turning a link into audio, for the pipeline
benchmark: one Python process, `yt_dlp` imported once, and per link a
`YoutubeDL` with `bestaudio/best` and FFmpegExtractAudio to m4a, as its
`POST /extract-audio` handler did.

    python3 old_service.py OUT_DIR FFMPEG_DIR URL...
"""

import sys

import yt_dlp


def main():
    out, ffmpeg_dir, urls = sys.argv[1], sys.argv[2], sys.argv[3:]
    for n, url in enumerate(urls):
        options = {
            'format': 'bestaudio/best',
            'outtmpl': f'{out}/{n}-%(id)s.%(ext)s',
            'postprocessors': [{'key': 'FFmpegExtractAudio', 'preferredcodec': 'm4a'}],
            'ffmpeg_location': ffmpeg_dir,
            'quiet': True,
            'no_warnings': True,
            'noprogress': True,
        }
        with yt_dlp.YoutubeDL(options) as ydl:
            if ydl.download([url]) != 0:
                sys.exit(f'{url} failed')


if __name__ == '__main__':
    main()
