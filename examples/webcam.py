"""Track people on a webcam (or any video) and watch them live in a browser; works with headless OpenCV.

Usage: python examples/webcam.py [SOURCE] [--port 8080] [--checkpoint NAME_OR_PATH]
(SOURCE: camera index, video file or URL; default 0). Then open http://127.0.0.1:8080/. Ctrl-C stops.
"""

from __future__ import annotations

import argparse
import time

import lightpose


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", nargs="?", default="0")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--checkpoint", default=None, help="weights name, path or URL (default: published model)")
    args = parser.parse_args()

    est = lightpose.PoseEstimator.from_pretrained(args.checkpoint)
    with lightpose.LiveServer("127.0.0.1", args.port) as server:
        print(f"open {server.url}")
        last = time.perf_counter()
        try:
            for index, result in enumerate(est.stream(args.source, track=True, smooth=True)):
                now = time.perf_counter()
                fps, last = 1.0 / max(now - last, 1e-6), now
                server.publish(result.plot(bbox=True), frame=index, fps=fps, people=len(result))
                for pose in result:
                    wrist = pose["r_wri"]
                    if wrist is not None:
                        print(f"frame {result.frame}: person {pose.id} right wrist at ({wrist.x:.0f}, {wrist.y:.0f})")
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
