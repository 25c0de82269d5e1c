//! Looking at a solid: its seven views and contact sheet, and their captions.

use std::time::Instant;

use crate::mesh::Mesh;
use crate::render::{self, RenderError, View};
use crate::report::CaptionRecord;

use super::{write_json, PipelineError, Run, Stop};

impl Run<'_> {
    /// Renders the attempt's views and sheet into its folder and captions them.
    pub(super) async fn look(&mut self, number: u32, mesh: Mesh) -> Result<(), Stop> {
        self.status(number, "rendering");
        let (views, render_ms) = self.draw(number, mesh).await??;
        self.record.timings.render_ms += render_ms;

        let mut caption_ms = None;
        let mut captions = None;
        let engine = self.engine;
        if let Some(captioner) = &engine.captioner {
            self.status(number, "captioning");
            let started = Instant::now();
            let images: Vec<_> = views.images.iter().map(|(_, img)| img.clone()).collect();
            let texts = captioner.caption(images).await?;
            let ms = started.elapsed().as_secs_f64() * 1e3;
            self.record.timings.caption_ms += ms;
            caption_ms = Some(ms);
            let records: Vec<CaptionRecord> = View::ALL
                .iter()
                .zip(texts)
                .map(|(&view, c)| CaptionRecord {
                    view,
                    text: c.text,
                    score: c.score,
                })
                .collect();
            write_json(
                &self.attempt_dir(number).join(crate::run::CAPTIONS_FILE),
                &records,
            )?;
            captions = Some(records);
        }
        let attempt = self.attempt_mut(number);
        attempt.timings.render_ms = Some(render_ms);
        attempt.timings.caption_ms = caption_ms;
        attempt.captions = captions;
        Ok(())
    }

    /// Draws the views of a shape the worker refused, its free edges marked,
    /// into the attempt's folder, so the report shows where it is open. Not
    /// captioned: nothing is judged on them. A mesh that cannot be drawn
    /// leaves the attempt without views.
    pub(super) async fn draw_refused(&mut self, number: u32, mesh: Mesh) -> Result<(), Stop> {
        self.status(number, "drawing the refused shape");
        match self.draw(number, mesh).await? {
            Ok((_, render_ms)) => {
                self.record.timings.render_ms += render_ms;
                self.attempt_mut(number).timings.render_ms = Some(render_ms);
            }
            Err(err) => tracing::warn!(
                attempt = number,
                error = %crate::error_chain(&err),
                "the refused shape cannot be drawn; its attempt has no views"
            ),
        }
        Ok(())
    }

    /// Renders `mesh`'s seven views and contact sheet into attempt
    /// `number`'s folder, one render at a time; the views and the time taken.
    async fn draw(
        &self,
        number: u32,
        mesh: Mesh,
    ) -> Result<Result<(render::Views, f64), RenderError>, Stop> {
        let dir = self.attempt_dir(number);
        let settings = self.engine.render.clone();
        let font = self.engine.font.clone();
        let started = Instant::now();
        let gate = self.engine.render_gate.acquire().await?;
        let drawn = tokio::task::spawn_blocking(move || -> Result<_, RenderError> {
            let views = render::render(&mesh, &settings)?;
            let sheet = render::contact_sheet(&views, &font);
            Ok((views, sheet))
        })
        .await
        .map_err(|e| PipelineError::Task("render", e))?;
        drop(gate);
        let (views, sheet) = match drawn {
            Ok(drawn) => drawn,
            Err(err) => return Ok(Err(err)),
        };
        let written = tokio::task::spawn_blocking(move || -> Result<render::Views, RenderError> {
            render::write_views(&dir, &views, &sheet)?;
            Ok(views)
        })
        .await
        .map_err(|e| PipelineError::Task("write views", e))?;
        Ok(written.map(|views| (views, started.elapsed().as_secs_f64() * 1e3)))
    }
}
